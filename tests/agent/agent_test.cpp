// An agent keeps serving after bad input: garbage frames, a header of another protocol
// version, malformed assignments, messages it does not take, data with no stage assigned.
// Each gets an error reply or a refusal and a counter; a good exchange still works after.
#include "strata/agent/agent.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>
#include <zmq.hpp>

#include "strata/transport/channel.h"
#include "strata/transport/codec.h"

namespace strata::agent {
namespace {

namespace tp = strata::transport;

class AgentBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("strata_agent_" + std::to_string(::getpid()));
    AgentOptions o;
    o.bind = "tcp://127.0.0.1:*";
    o.name = "victim";
    o.cache_dir = dir_.string();
    o.quiet = true;
    auto a = Agent::start(o);
    ASSERT_TRUE(a.ok()) << a.status().to_string();
    agent_ = std::move(a).value();
    thread_ = std::thread([this] { served_ = agent_->serve(stop_); });
    auto ctx = tp::Context::create(1);
    ASSERT_TRUE(ctx.ok());
    ctx_.emplace(std::move(ctx).value());
    auto c = tp::ControlClient::connect(*ctx_, agent_->control_endpoint());
    ASSERT_TRUE(c.ok());
    client_.emplace(std::move(c).value());
  }
  void TearDown() override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    EXPECT_TRUE(served_.ok()) << served_.to_string();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Sends `m` and returns the agent's reply.
  tp::ControlMessage ask(const tp::ControlMessage& m) {
    EXPECT_TRUE(client_->send(m, tp::Deadline::after_ms(5000)).ok());
    auto r = client_->recv(tp::Deadline::after_ms(5000));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? r->message : tp::ControlMessage(tp::Shutdown{"no reply"});
  }

  StatusCode error_code_of(const tp::ControlMessage& m) {
    const auto* e = std::get_if<tp::ErrorMessage>(&m);
    return e == nullptr ? StatusCode::kOk : e->code;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Agent> agent_;
  std::atomic<bool> stop_{false};
  Status served_;
  std::thread thread_;
  std::optional<tp::Context> ctx_;
  std::optional<tp::ControlClient> client_;
};

TEST_F(AgentBadInput, RefusesAndKeepsServing) {
  // Raw frames a strata peer would never send, on the control socket.
  zmq::context_t zctx;
  zmq::socket_t raw(zctx, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.set(zmq::sockopt::rcvtimeo, 5000);
  raw.connect(agent_->control_endpoint());
  const std::string garbage = "not a flatbuffer at all";
  raw.send(zmq::buffer(garbage), zmq::send_flags::none);
  zmq::message_t reply;
  ASSERT_TRUE(raw.recv(reply, zmq::recv_flags::none).has_value());  // an error reply, not silence
  // A well-formed header of protocol version 99.
  const std::vector<uint8_t> v99 = tp::encode_control(tp::Hello{}, 99);
  raw.send(zmq::buffer(v99), zmq::send_flags::none);
  ASSERT_TRUE(raw.recv(reply, zmq::recv_flags::none).has_value());

  tp::Assign bad;
  bad.slice_hash = "abc";
  bad.n_stages = 1;
  bad.unit_end = 1;
  bad.n_ctx = 0;  // no context
  bad.n_seq_max = 1;
  EXPECT_EQ(error_code_of(ask(bad)), StatusCode::kInvalidArgument);
  bad.n_ctx = 16;
  bad.slice_hash = "../../etc/passwd";
  EXPECT_EQ(error_code_of(ask(bad)), StatusCode::kInvalidArgument);
  bad.slice_hash = "feedfacefeedface";  // fine, but not cached: the agent asks for it
  EXPECT_EQ(error_code_of(ask(bad)), StatusCode::kNotFound);
  tp::ShipSlice unasked{"0123456789abcdef", 0, 4, 4};
  EXPECT_TRUE(client_
                  ->send(unasked, tp::Deadline::after_ms(5000),
                         tp::SharedBytes::copy_of(std::vector<uint8_t>{1, 2, 3, 4}))
                  .ok());
  auto r = client_->recv(tp::Deadline::after_ms(5000));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(error_code_of(r->message), StatusCode::kInvalidArgument);
  EXPECT_EQ(error_code_of(ask(tp::Ready{})),
            StatusCode::kInvalidArgument);  // not a message agents take

  // A data step with no stage assigned: counted, and the agent carries on.
  auto ds = tp::DataSender::connect(*ctx_, agent_->data_endpoint());
  ASSERT_TRUE(ds.ok());
  tp::DataHeader h;
  h.n_tokens = 1;
  h.seq_ids = {0};
  h.positions = {0};
  h.token_ids = {1};
  ASSERT_TRUE(ds->send(h, {}, tp::Deadline::after_ms(5000)).ok());

  // Still serving: a hello gets a hello.
  const tp::ControlMessage hi = ask(tp::Hello{});
  ASSERT_TRUE(std::holds_alternative<tp::Hello>(hi));
  EXPECT_EQ(std::get<tp::Hello>(hi).agent_name, "victim");
  EXPECT_EQ(std::get<tp::Hello>(hi).data_endpoint, agent_->data_endpoint());
  for (int i = 0; i < 100 && agent_->counters().step_errors == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const AgentCounters c = agent_->counters();
  EXPECT_GE(c.control_rejected, 2u);  // garbage and version 99
  EXPECT_EQ(c.step_errors, 1u);
  EXPECT_GE(c.control_messages, 6u);
}

TEST(AgentStart, BadOptionsAreRefused) {
  AgentOptions o;
  o.bind = "not-an-endpoint";
  EXPECT_EQ(Agent::start(o).status().code(), StatusCode::kInvalidArgument);
  o.bind = "tcp://127.0.0.1:*";
  o.emulate_profile = "/nonexistent.json";
  EXPECT_EQ(Agent::start(o).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace strata::agent
