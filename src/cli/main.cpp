#include "cli/commands.h"

int main(int argc, char** argv) { return clade::cli::Run(argc, argv); }
