# The two commands a user types: `make demo` and `make test`. `make build` builds only.
.PHONY: all bootstrap build demo test format-check format asan clean

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@cmake --preset release >/dev/null
	@cmake --build --preset release

demo: build
	@scripts/demo

format-check:
	@scripts/format --check

format:
	@scripts/format

asan: bootstrap
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan

test: build asan format-check
	@ctest --preset release
	@ctest --preset asan

clean:
	rm -rf build build-debug build-asan
