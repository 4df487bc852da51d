#!/usr/bin/env python3
"""Pipeline scaling of `strata run` on this machine (issue 5's speed figures), side by side.

  bench/pipeline_scaling.py [--strata build/release/bin/strata] [--model FILE.gguf]
      [--rounds 3] [--sequences 8] [--n 16] [--prompt 32] [--agents 2]

Configurations, alternated round by round, medians reported:
  throughput, S sequences in flight:
    one agent with 1 thread holding every layer, one group of S (weights read once per step)
    one agent with 1 thread holding every layer, S groups of one (the schedule of the split)
    A agents with 1 thread each, the layers split evenly, one group per agent
  single sequence, T threads (T = 1 and 2):
    strata generate (one process), then a 2-stage split with T threads per agent
Agents run on 127.0.0.1 without link shaping; the model is synthesized when missing (the
1.1B shape in Q4_0 is the default, dim 2048 x 16 layers). Prints tables a person can paste."""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("--strata", default="build/release/bin/strata")
ap.add_argument("--model", default="build/bench-models/llama1.1b-q4_0.gguf")
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--sequences", type=int, default=8)
ap.add_argument("--n", type=int, default=16)
ap.add_argument("--prompt", type=int, default=32)
ap.add_argument("--agents", type=int, default=2)
args = ap.parse_args()

if not os.path.exists(args.model):
    os.makedirs(os.path.dirname(args.model) or ".", exist_ok=True)
    print(f"synthesizing {args.model}", file=sys.stderr)
    subprocess.run([args.strata, "model", "synth", "--arch", "llama", "--dim", "2048", "--layers", "16",
                    "--heads", "32", "--kv-heads", "8", "--ffn", "8192", "--vocab", "32000", "--type",
                    "q4_0", "--seed", "1", "-o", args.model], check=True)

work = tempfile.mkdtemp(prefix="strata-pipeline-bench-")


def start_agent(name, threads):
    p = subprocess.Popen([args.strata, "agent", "--bind", "tcp://127.0.0.1:*", "--name", name,
                          "--threads", str(threads), "--cache-dir", os.path.join(work, "cache-" + name),
                          "--quiet"], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().split()
    if len(line) < 5:
        p.kill()
        sys.exit(f"agent {name} did not start")
    return p, line[4]


def run(agents, sequences, groups, threads_note=""):
    cmd = [args.strata, "run", "--model", args.model, "--prompt-len", str(args.prompt), "-n", str(args.n),
           "--sequences", str(sequences), "--json", "--quiet", "--slice-dir", os.path.join(work, "slices")]
    if groups:
        cmd += ["--groups", str(groups)]
    for name, ep in agents:
        cmd += ["--agent", f"{name}={ep}"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["measured"]


def generate(threads):
    out = subprocess.run([args.strata, "generate", "--model", args.model, "--prompt-len", str(args.prompt),
                          "-n", str(args.n), "--threads", str(threads), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["decode_tps"]


procs = []
try:
    # Agents live for the whole benchmark; a run assigns them their stage (slices are cached
    # after the first round).
    one = start_agent("all", 1)
    procs.append(one[0])
    split1 = []
    for i in range(args.agents):
        p, ep = start_agent(f"s{i}", 1)
        procs.append(p)
        split1.append((f"s{i}", ep))
    split2 = []
    for i in range(2):
        p, ep = start_agent(f"t{i}", 2)
        procs.append(p)
        split2.append((f"t{i}", ep))

    res = {k: [] for k in ["one_batched", "one_groups", "split", "gen1", "gen2", "split_1seq_t1", "split_1seq_t2",
                           "one_1seq_t1"]}
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
        res["one_batched"].append(run([("all", one[1])], args.sequences, 1)["throughput_tok_per_s"])
        res["split"].append(run(split1, args.sequences, 0)["throughput_tok_per_s"])
        res["one_groups"].append(run([("all", one[1])], args.sequences, args.sequences)["throughput_tok_per_s"])
        res["gen1"].append(generate(1))
        res["split_1seq_t1"].append(1000.0 / run(split1[:2], 1, 1)["latency_ms"])
        res["one_1seq_t1"].append(1000.0 / run([("all", one[1])], 1, 1)["latency_ms"])
        res["gen2"].append(generate(2))
        res["split_1seq_t2"].append(1000.0 / run(split2, 1, 1)["latency_ms"])
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()

m = {k: statistics.median(v) for k, v in res.items()}
print(f"\nmodel {args.model}, {args.sequences} sequences x {args.n} new tokens after {args.prompt}, "
      f"{args.rounds} alternated rounds, medians (tok/s)\n")
print("| throughput, %d sequences | tok/s | split / this |" % args.sequences)
print("|---|---|---|")
print(f"| {args.agents} agents x 1 thread, split evenly, one group per agent | {m['split']:.2f} | 1.00 |")
print(f"| 1 agent x 1 thread, all layers, one group of {args.sequences} | {m['one_batched']:.2f} | "
      f"{m['split'] / m['one_batched']:.2f} |")
print(f"| 1 agent x 1 thread, all layers, {args.sequences} groups of 1 | {m['one_groups']:.2f} | "
      f"{m['split'] / m['one_groups']:.2f} |")
print()
print("| single sequence decode | tok/s | vs one process |")
print("|---|---|---|")
print(f"| strata generate, 1 thread | {m['gen1']:.2f} | 1.00 |")
print(f"| 1 agent x 1 thread (run, all layers) | {m['one_1seq_t1']:.2f} | {m['one_1seq_t1'] / m['gen1']:.2f} |")
print(f"| 2 agents x 1 thread, 2 stages | {m['split_1seq_t1']:.2f} | {m['split_1seq_t1'] / m['gen1']:.2f} |")
print(f"| strata generate, 2 threads | {m['gen2']:.2f} | 1.00 |")
print(f"| 2 agents x 2 threads, 2 stages | {m['split_1seq_t2']:.2f} | {m['split_1seq_t2'] / m['gen2']:.2f} |")
print("\nraw:", json.dumps(res))
