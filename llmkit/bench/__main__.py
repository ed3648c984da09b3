"""Command line: ``python -m llmkit.bench offline|suite|merge ...`` (``--help`` on each lists its flags).

    python -m llmkit.bench offline --engine vllm --model DIR --num-prompts 64     # one offline run, JSON out
    python -m llmkit.bench suite --engines vllm,transformers --model DIR --out FILE   # the GPU run
    python -m llmkit.bench merge OUT.json RUN1.json RUN2.json                        # one record of several runs
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from llmkit.bench.offline import ENGINES, offline_command
from llmkit.bench.results import load, save
from llmkit.bench.suite import SUITE_ENGINES, merge, suite
from llmkit.bench.workload import Workload


def _add_workload(parser: argparse.ArgumentParser, num_prompts: int, input_len: int, output_len: int) -> None:
    """The four flags of a Workload."""
    parser.add_argument("--num-prompts", type=int, default=num_prompts)
    parser.add_argument("--input-len", type=int, default=input_len)
    parser.add_argument("--output-len", type=int, default=output_len)
    parser.add_argument("--seed", type=int, default=0)


def _workload(args: argparse.Namespace) -> Workload:
    """The Workload the flags describe."""
    return Workload(args.num_prompts, args.input_len, args.output_len, args.seed)


def _levels(text: str) -> list[int]:
    """"1,4,16" → [1, 4, 16] (argparse reports a bad value)."""
    try:
        return [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def parser() -> argparse.ArgumentParser:
    """The ``python -m llmkit.bench`` parser."""
    p = argparse.ArgumentParser(prog="python -m llmkit.bench", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    off = sub.add_parser("offline", help="offline throughput of one engine (prints JSON)")
    off.add_argument("--engine", choices=ENGINES, required=True)
    off.add_argument("--model", required=True)
    _add_workload(off, 64, 128, 128)
    off.add_argument("--batch-size", type=int, default=1, help="transformers only")
    off.add_argument("--engine-args", default="{}", help="JSON object of extra engine arguments")
    off.add_argument("--json", help="also write the result here")
    st = sub.add_parser("suite", help="the full benchmark of notebook 10, engine after engine")
    st.add_argument("--engines", default=",".join(SUITE_ENGINES))
    st.add_argument("--model", required=True)
    st.add_argument("--out", required=True)
    st.add_argument("--concurrency", type=_levels, default=[1, 4, 16, 64, 256])
    _add_workload(st, 256, 128, 256)
    st.add_argument("--decode-len", type=int, default=512, help="answer length of the batch-1 runs")
    st.add_argument("--no-offline", action="store_true")
    mg = sub.add_parser("merge", help="merge suite records of one machine (engines run in separate calls)")
    mg.add_argument("out")
    mg.add_argument("records", nargs="+")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m llmkit.bench``."""
    args = parser().parse_args(argv)
    if args.command == "offline":
        result = offline_command(args.engine, args.model, _workload(args), args.batch_size,
                                 json.loads(args.engine_args or "{}"))
        if args.json:
            save(args.json, result)
        print(json.dumps(result, indent=2))
    elif args.command == "merge":
        save(args.out, merge([load(p) for p in args.records]))
    else:
        suite([e.strip() for e in args.engines.split(",") if e.strip()], args.model, args.out,
              concurrencies=args.concurrency, workload=_workload(args), decode_len=args.decode_len,
              offline=not args.no_offline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
