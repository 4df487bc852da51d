// CurveZMQ keys: encryption of every link and authentication of the server (the agent) to its
// clients. A client must know the agent's public key; the agent accepts any client (there is no
// client allow-list yet). Keys are Z85 text, 40 characters each.
#pragma once

#include <string>

#include "strata/base/status.h"

namespace strata::transport {

struct CurveKeyPair {
  std::string public_z85;
  std::string secret_z85;
  bool operator==(const CurveKeyPair&) const = default;
};

// A fresh keypair. Returns kUnsupported when libzmq was built without CURVE. Thread-safe.
Result<CurveKeyPair> generate_curve_keypair();

// Writes `keys` to `path` as two lines, "public <z85>" and "secret <z85>", readable by its owner
// only (mode 0600), through a temporary file and a rename. Returns kIo naming the path.
Status save_curve_keypair(const std::string& path, const CurveKeyPair& keys);

// Reads a file written by save_curve_keypair. Returns kNotFound / kPermissionDenied / kIo for
// the file, kCorrupt when a line is missing, a key is not Z85 of 40 characters, or the public
// key does not belong to the secret one.
Result<CurveKeyPair> load_curve_keypair(const std::string& path);

}  // namespace strata::transport
