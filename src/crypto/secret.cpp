#include "crypto/secret.h"

#include <openssl/crypto.h>

#include <cstdlib>
#include <cstring>

namespace clade::crypto {

SecretBytes::SecretBytes(size_t size) : size_(size) {
  if (size_ > 0) data_ = static_cast<uint8_t*>(std::calloc(size_, 1));
  if (size_ > 0 && data_ == nullptr) std::abort();
}

SecretBytes::SecretBytes(const uint8_t* data, size_t size) : SecretBytes(size) {
  if (size > 0) std::memcpy(data_, data, size);
}

SecretBytes SecretBytes::Adopt(std::vector<uint8_t>& data) {
  SecretBytes s(data.data(), data.size());
  OPENSSL_cleanse(data.data(), data.size());
  data.clear();
  return s;
}

SecretBytes::~SecretBytes() { Wipe(); }

SecretBytes::SecretBytes(SecretBytes&& other) noexcept : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Wipe();
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

bool SecretBytes::Equals(const SecretBytes& other) const {
  if (size_ != other.size_) return false;
  if (size_ == 0) return true;
  return CRYPTO_memcmp(data_, other.data_, size_) == 0;
}

void SecretBytes::Truncate(size_t n) {
  if (n >= size_) return;
  OPENSSL_cleanse(data_ + n, size_ - n);
  size_ = n;
}

void SecretBytes::Wipe() {
  if (data_ != nullptr) {
    OPENSSL_cleanse(data_, size_);
    std::free(data_);
  }
  data_ = nullptr;
  size_ = 0;
}

}  // namespace clade::crypto
