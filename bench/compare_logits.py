#!/usr/bin/env python3
"""strata vs llama.cpp as a logits oracle: top-K logits after the prompt and leading greedy
tokens that agree, on the same GGUF with the same prompt ids.

  bench/compare_logits.py --strata build/release/bin/strata --models-dir build/bench-models \
      [--types f32,q8_0,q4_0] [--prompt 128] [--gen 32] [--threads 2]

Needs NODE_LLAMA_CPP_PATH (../shared/peer/README.md). Prints a table."""
import argparse, json, os, subprocess, sys

ap = argparse.ArgumentParser()
ap.add_argument("--strata", default="build/release/bin/strata")
ap.add_argument("--peer", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "peer", "llamacpp_bench.mjs"))
ap.add_argument("--models-dir", default="build/bench-models")
ap.add_argument("--types", default="f32,q8_0,q4_0")
ap.add_argument("--shape", default="--dim 1024 --layers 8 --heads 16 --kv-heads 4 --ffn 2816 --vocab 32000")
ap.add_argument("--prompt", type=int, default=128)
ap.add_argument("--gen", type=int, default=32)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--top", type=int, default=5)
a = ap.parse_args()
if "NODE_LLAMA_CPP_PATH" not in os.environ:
    sys.exit("NODE_LLAMA_CPP_PATH is not set: install the peer as ../shared/peer/README.md says")
os.makedirs(a.models_dir, exist_ok=True)
print(f"| type | top-{a.top} ids equal | max |logit diff| (top-{a.top}) | leading greedy tokens equal (of {a.gen}) |")
print("|---|---|---|---|")
for t in a.types.split(","):
    m = os.path.join(a.models_dir, f"cmp-{t}.gguf")
    if not os.path.exists(m):
        subprocess.run(f"{a.strata} model synth --arch llama {a.shape} --type {t} --seed 3 -o {m}",
                       shell=True, check=True, stderr=subprocess.DEVNULL)
    s = json.loads(subprocess.run([a.strata, "generate", "--model", m, "--prompt-len", str(a.prompt),
                                   "-n", str(a.gen), "--threads", str(a.threads), "--logits-top", str(a.top),
                                   "--json"], check=True, capture_output=True, text=True).stdout)
    l = json.loads(subprocess.run(["node", a.peer, "--model", m, "--threads", str(a.threads), "--prompt",
                                   str(a.prompt), "--gen", str(a.gen - 1), "--reps", "1", "--top", str(a.top)],
                                  check=True, capture_output=True, text=True).stdout)
    s_top = [(int(i), float(v)) for i, v in s["top_logits"]]
    l_top = [(int(e["id"]), float(e["value"])) for e in l["verification"]["first_position_top_logits"]]
    l_map = dict(l_top)
    diff = max(abs(v - l_map[i]) for i, v in s_top if i in l_map) if any(i in l_map for i, _ in s_top) else float("nan")
    st, lt = s["tokens"], l["verification"]["greedy_tokens"]
    agree = 0
    for x, y in zip(st, lt):
        if x != y:
            break
        agree += 1
    print(f"| {t} | {[i for i, _ in s_top] == [i for i, _ in l_top]} | {diff:.2e} | {agree} |")
    sys.stdout.flush()
