"""Send each prompt of a text file (one per line) to an LLM service's /v1/chat/completions, one request
at a time, like chat clients would. Prints one JSON line: {"requests": N, "errors": N, "prompt_tokens":
[min, max]}. With --usage-csv PATH it also writes each answered request's prompt_tokens and
completion_tokens (how files/demo/llm-usage.csv, the demo LLM's reference usage, was made).
usage: send_chat.py URL PROMPTS_FILE [--repeat N] [--max-tokens N] [--usage-csv PATH]
(bearer token from MODEL_API_TOKEN)"""

import argparse
import csv
import json
import os
import sys
import urllib.request


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("prompts")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--usage-csv")
    args = parser.parse_args(argv)
    with open(args.prompts) as handle:
        prompts = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    headers = {"Content-Type": "application/json"}
    if os.environ.get("MODEL_API_TOKEN"):
        headers["Authorization"] = "Bearer " + os.environ["MODEL_API_TOKEN"]
    usage, errors = [], 0
    for prompt in prompts * args.repeat:
        body = json.dumps({"messages": [{"role": "user", "content": prompt}], "max_tokens": args.max_tokens,
                           "temperature": 0}).encode()
        request = urllib.request.Request(args.url.rstrip("/") + "/v1/chat/completions", data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                answer = json.load(response)
            usage.append((answer["usage"]["prompt_tokens"], answer["usage"]["completion_tokens"]))
        except (OSError, ValueError, KeyError):
            errors += 1
    if args.usage_csv:
        with open(args.usage_csv, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["prompt_tokens", "completion_tokens"])
            writer.writerows(usage)
    tokens = [p for p, _ in usage]
    print(json.dumps({"requests": len(prompts) * args.repeat, "errors": errors,
                      "prompt_tokens": [min(tokens), max(tokens)] if tokens else None}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
