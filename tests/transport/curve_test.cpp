#include "strata/transport/curve.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include <gtest/gtest.h>

#include "strata/base/io.h"
#include "test_util.h"

namespace strata::transport {
namespace {

using testing::make_context;
using testing::soon;

std::string temp_path(const char* name) {
  return ::testing::TempDir() + "strata_curve_" + std::to_string(::getpid()) + "_" + name;
}

TEST(Curve, KeypairsAreFreshAndSaveAndLoad) {
  auto a = generate_curve_keypair();
  auto b = generate_curve_keypair();
  ASSERT_TRUE(a.ok() && b.ok()) << a.status().to_string();
  EXPECT_EQ(a->public_z85.size(), 40u);
  EXPECT_EQ(a->secret_z85.size(), 40u);
  EXPECT_NE(a->secret_z85, b->secret_z85);

  const std::string path = temp_path("keys");
  ASSERT_TRUE(save_curve_keypair(path, *a).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto back = load_curve_keypair(path);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, *a);
  std::remove(path.c_str());
}

TEST(Curve, BadKeyFilesAreCorrupt) {
  auto a = generate_curve_keypair();
  auto b = generate_curve_keypair();
  ASSERT_TRUE(a.ok() && b.ok());
  const std::string path = temp_path("bad");
  const auto load_of = [&](const std::string& text) {
    EXPECT_TRUE(write_file_atomic(path, text).ok());
    return load_curve_keypair(path).status();
  };
  EXPECT_EQ(load_of("public " + a->public_z85 + "\n").code(), StatusCode::kCorrupt);
  EXPECT_EQ(load_of("public " + a->public_z85 + "\nsecret " + b->secret_z85 + "\n").code(),
            StatusCode::kCorrupt);  // keys of two different pairs
  EXPECT_EQ(load_of("public " + a->public_z85 + "\nsecret short\n").code(), StatusCode::kCorrupt);
  EXPECT_EQ(load_of("colour blue\n").code(), StatusCode::kCorrupt);
  std::remove(path.c_str());
  EXPECT_EQ(load_curve_keypair(path).status().code(), StatusCode::kNotFound);
}

struct CurveSetup {
  CurveKeyPair server, client;
};

CurveSetup keys() { return {generate_curve_keypair().value(), generate_curve_keypair().value()}; }

TEST(Curve, EncryptedControlAndDataRoundTrip) {
  Context ctx = make_context();
  const CurveSetup k = keys();
  ChannelOptions server_opts;
  server_opts.curve.keys = k.server;
  ChannelOptions client_opts;
  client_opts.curve = {k.client, k.server.public_z85};

  auto server = ControlServer::bind(ctx, "tcp://127.0.0.1:*", server_opts);
  ASSERT_TRUE(server.ok()) << server.status().to_string();
  auto client = ControlClient::connect(ctx, server->endpoint(), client_opts);
  ASSERT_TRUE(client.ok()) << client.status().to_string();
  ASSERT_TRUE(client->send(testing::sample_hello(), soon()).ok());
  auto req = server->recv(soon());
  ASSERT_TRUE(req.ok()) << req.status().to_string();
  EXPECT_TRUE(req->message == ControlMessage(testing::sample_hello()));
  ASSERT_TRUE(server->reply(req->peer, Ready{0, 1, 2}, soon()).ok());
  auto ready = client->recv(soon());
  ASSERT_TRUE(ready.ok()) << ready.status().to_string();

  auto rx = DataReceiver::bind(ctx, "tcp://127.0.0.1:*", server_opts);
  ASSERT_TRUE(rx.ok());
  auto tx = DataSender::connect(ctx, rx->endpoint(), client_opts);
  ASSERT_TRUE(tx.ok());
  const auto acts = testing::sample_activations(48);
  ASSERT_TRUE(tx->send(testing::sample_data_header(), SharedBytes::from_vector(acts), soon()).ok());
  auto got = rx->recv(soon());
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->payload.size_bytes(), acts.size() * sizeof(float));
}

TEST(Curve, WrongServerKeyOrPlaintextNeverConnects) {
  Context ctx = make_context();
  const CurveSetup k = keys();
  ChannelOptions server_opts;
  server_opts.curve.keys = k.server;
  auto server = ControlServer::bind(ctx, "tcp://127.0.0.1:*", server_opts);
  ASSERT_TRUE(server.ok());

  ChannelOptions wrong;
  wrong.curve = {k.client, k.client.public_z85};  // not the server's key
  auto impostor = ControlClient::connect(ctx, server->endpoint(), wrong);
  ASSERT_TRUE(impostor.ok());
  EXPECT_EQ(impostor->send(Hello{}, Deadline::after_ms(300)).code(), StatusCode::kUnavailable);

  auto plain = ControlClient::connect(ctx, server->endpoint());
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->send(Hello{}, Deadline::after_ms(300)).code(), StatusCode::kUnavailable);
  EXPECT_EQ(server->recv(Deadline::after_ms(50)).status().code(), StatusCode::kDeadlineExceeded);
}

TEST(Curve, MalformedKeysAreInvalidArguments) {
  Context ctx = make_context();
  ChannelOptions bad;
  bad.curve.keys = {"too-short", "also-too-short"};
  auto server = ControlServer::bind(ctx, "tcp://127.0.0.1:*", bad);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument) << server.status().to_string();
  ChannelOptions no_server_key;
  no_server_key.curve.keys = generate_curve_keypair().value();
  auto client = ControlClient::connect(ctx, "tcp://127.0.0.1:1", no_server_key);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata::transport
