// A stand-in for libFuzzer's driver where clang is not at hand: feeds every seed file of a corpus
// directory to LLVMFuzzerTestOneInput, then --mutations N deterministic variants of each (bit
// flips, byte changes, truncations, duplications). A crash or sanitizer report fails the test.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<uint8_t> Mutate(const std::vector<uint8_t>& seed, std::mt19937_64& rng) {
  std::vector<uint8_t> out = seed;
  if (out.empty()) out.push_back(0);
  switch (rng() % 5) {
    case 0:  // flip one bit
      out[rng() % out.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
      break;
    case 1:  // set a byte to a boundary value
      out[rng() % out.size()] = static_cast<uint8_t>((rng() % 2) ? 0xff : 0x00);
      break;
    case 2:  // truncate
      out.resize(rng() % out.size());
      break;
    case 3: {  // duplicate a slice
      size_t from = rng() % out.size();
      size_t len = std::min<size_t>(rng() % 64, out.size() - from);
      out.insert(out.begin() + static_cast<long>(rng() % out.size()), seed.begin() + from,
                 seed.begin() + from + len);
      break;
    }
    default:  // several random bytes
      for (int i = 0; i < 4; ++i) out[rng() % out.size()] = static_cast<uint8_t>(rng());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR [--mutations N]\n", argv[0]);
    return 2;
  }
  int mutations = 0;
  if (argc == 4 && std::strcmp(argv[2], "--mutations") == 0) mutations = std::atoi(argv[3]);
  std::vector<std::vector<uint8_t>> seeds;
  for (const auto& entry : std::filesystem::directory_iterator(argv[1])) {
    std::ifstream f(entry.path(), std::ios::binary);
    seeds.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "no seeds in %s\n", argv[1]);
    return 1;
  }
  std::mt19937_64 rng(20261124);
  size_t runs = 0;
  for (const auto& seed : seeds) {
    LLVMFuzzerTestOneInput(seed.data(), seed.size());
    ++runs;
    for (int i = 0; i < mutations; ++i) {
      auto m = Mutate(seed, rng);
      LLVMFuzzerTestOneInput(m.data(), m.size());
      ++runs;
    }
  }
  std::printf("%zu inputs from %zu seeds: no crash\n", runs, seeds.size());
  return 0;
}
