// SecretBytes: key material and plaintext secrets. Move-only (a copy would be one more place to
// wipe), wiped with OPENSSL_cleanse when freed or moved from, compared in constant time, never
// printed. Reading the bytes goes through RevealSecret(), so every use is greppable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace clade::crypto {

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(size_t size);
  SecretBytes(const uint8_t* data, size_t size);
  explicit SecretBytes(std::span<const uint8_t> data) : SecretBytes(data.data(), data.size()) {}
  // Takes over `data` and wipes the vector it came from.
  static SecretBytes Adopt(std::vector<uint8_t>& data);
  ~SecretBytes();

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // The only read access. Grep for RevealSecret to find every place a secret is used.
  std::span<const uint8_t> RevealSecret() const { return {data_, size_}; }
  std::span<uint8_t> RevealSecretMutable() { return {data_, size_}; }
  std::string_view RevealSecretAsString() const {
    return {reinterpret_cast<const char*>(data_), size_};
  }

  // Constant-time equality (length is not secret).
  bool Equals(const SecretBytes& other) const;

  // Shrinks to `n` bytes (wiping the tail).
  void Truncate(size_t n);

 private:
  void Wipe();
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace clade::crypto
