"""Send the prompts of a file to a running `tao serve` with the official openai client (examples/flywheel_demo.sh).

    python examples/flywheel_traffic.py --base-url http://127.0.0.1:8765/v1 --key sk-tao-... \
        --prompts examples/flywheel_prompts.jsonl --rows 0:12 --repeat 2
"""

from __future__ import annotations

import argparse
import collections
import json

import openai


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--prompts", required=True, help="JSONL with 'prompt' or 'messages'")
    ap.add_argument("--rows", default=":", help="python slice of the file's rows, e.g. 0:12")
    ap.add_argument("--repeat", type=int, default=1, help="send each prompt this many times")
    ap.add_argument("--max-tokens", type=int, default=8)
    args = ap.parse_args()
    rows = [json.loads(line) for line in open(args.prompts, encoding="utf-8") if line.strip()]
    rows = rows[slice(*[int(x) if x else None for x in args.rows.split(":")])]
    client = openai.OpenAI(base_url=args.base_url, api_key=args.key, max_retries=0)
    versions: collections.Counter = collections.Counter()
    sample = None
    for _ in range(args.repeat):
        for row in rows:
            messages = row.get("messages") or [{"role": "user", "content": row["prompt"]}]
            r = client.chat.completions.create(model="tao", messages=messages, max_tokens=args.max_tokens,
                                               temperature=0, metadata={"task": "demo"})
            versions[r.system_fingerprint] += 1
            sample = sample or (messages[-1]["content"], r.choices[0].message.content)
    print(f"sent {sum(versions.values())} requests; answered by model version(s): {dict(versions)}")
    print(f"e.g. {sample[0]!r} → {sample[1]!r}")


if __name__ == "__main__":
    main()
