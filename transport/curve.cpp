#include "strata/transport/curve.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include <zmq.h>

#include "strata/base/io.h"

namespace strata::transport {
namespace {

constexpr size_t kZ85KeyChars = 40;

// The public key of `secret_z85`, or an error when it is not a Z85 key.
Result<std::string> public_of(const std::string& secret_z85) {
  if (secret_z85.size() != kZ85KeyChars) {
    return corrupt("secret key has " + std::to_string(secret_z85.size()) + " characters, not " +
                   std::to_string(kZ85KeyChars));
  }
  char public_key[kZ85KeyChars + 1] = {};
  if (zmq_curve_public(public_key, secret_z85.c_str()) != 0) {
    return corrupt("secret key is not a Z85 CURVE key");
  }
  return std::string(public_key);
}

}  // namespace

Result<CurveKeyPair> generate_curve_keypair() {
  if (zmq_has("curve") == 0) return unsupported("this libzmq was built without CURVE");
  char public_key[kZ85KeyChars + 1] = {};
  char secret_key[kZ85KeyChars + 1] = {};
  if (zmq_curve_keypair(public_key, secret_key) != 0) {
    return unsupported(std::string("CURVE keypair: ") + zmq_strerror(zmq_errno()));
  }
  return CurveKeyPair{public_key, secret_key};
}

Status save_curve_keypair(const std::string& path, const CurveKeyPair& keys) {
  STRATA_RETURN_IF_ERROR(
      write_file_atomic(path, "public " + keys.public_z85 + "\nsecret " + keys.secret_z85 + "\n"));
  if (::chmod(path.c_str(), S_IRUSR | S_IWUSR) != 0) {
    return io_error(path + ": cannot restrict to its owner: " + std::strerror(errno));
  }
  return {};
}

Result<CurveKeyPair> load_curve_keypair(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(const std::string text, read_file(path));
  CurveKeyPair keys;
  std::istringstream in(text);
  std::string label, value;
  while (in >> label >> value) {
    if (label == "public")
      keys.public_z85 = value;
    else if (label == "secret")
      keys.secret_z85 = value;
    else
      return corrupt(path + ": unknown line '" + label + "'");
  }
  if (keys.public_z85.empty() || keys.secret_z85.empty()) {
    return corrupt(path + ": needs a 'public <z85>' and a 'secret <z85>' line");
  }
  auto derived = public_of(keys.secret_z85);
  if (!derived.ok()) return derived.status().with_context(path);
  if (*derived != keys.public_z85) {
    return corrupt(path + ": the public key does not belong to the secret key");
  }
  return keys;
}

}  // namespace strata::transport
