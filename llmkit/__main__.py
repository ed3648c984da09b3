"""Command line: ``python -m llmkit tiny-poet [--corpus FILE] [--force] [--check-vllm]``, ``model``,
``random-model``, ``vllm-flags`` (what servers/launch_vllm.sh passes to ``vllm serve``), ``adapters`` (the course's
LoRA adapters for the course model, notebook 15)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m llmkit``."""
    parser = argparse.ArgumentParser(prog="python -m llmkit", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    tp = sub.add_parser("tiny-poet", help="build the embedded model if missing; print its directory last")
    tp.add_argument("--corpus", help="poems to train on (fortune format or blank-line separated)")
    tp.add_argument("--force", action="store_true", help="rebuild even if a build exists")
    tp.add_argument("--check-vllm", action="store_true",
                    help="then measure tool calls and reasoning in vLLM's server and record them in build_info.json")
    sub.add_parser("model", help="print the model the course will use (default_model())")
    sub.add_parser("vllm-flags", help="print vLLM's engine flags for this machine (llm_kwargs(): the small-machine "
                                      "switch), on one line")
    ad = sub.add_parser("adapters", help="build the course's LoRA adapters for the course model if missing; print "
                                         "one 'name=folder' per line")
    ad.add_argument("--force", action="store_true", help="retrain even if a build exists")
    dr = sub.add_parser("draft", help="build tiny-poet's draft model (notebook 17: speculative decoding) if missing; "
                                      "print its directory last")
    dr.add_argument("--force", action="store_true", help="retrain even if a build exists")
    sub.add_parser("cjk-font", help="fetch a Chinese font for plot labels (apt-get download, no root)")
    sp = sub.add_parser("random-model", help="a random-weight model of a real architecture (shapes and engines, not text)")
    from llmkit.random_models import MATRIX, MODELS

    sp.add_argument("--shape", default="qwen3-0.6b", choices=[*sorted(MODELS), "matrix"],
                    help="which model (default qwen3-0.6b); 'small' is a quick CPU stand-in for an untrained model; "
                         f"'matrix' builds the whole architecture matrix: {', '.join(MATRIX)}")
    sp.add_argument("--out", required=True, help="folder to write (with --shape matrix: one subfolder per model)")
    args = parser.parse_args(argv)

    if args.cmd == "tiny-poet":
        from llmkit import tiny_poet

        log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
        try:
            if args.force or args.corpus:
                path = tiny_poet.build(corpus=args.corpus, log=log)
            else:
                path = tiny_poet.ensure(log=log)
        except tiny_poet.CorpusMissing as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if args.check_vllm:
            tiny_poet.record_vllm_checks(path, log=log)
        print(path)
        return 0
    if args.cmd == "model":
        from llmkit.models import ModelNotFound, default_model

        try:
            print(default_model())
        except ModelNotFound as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    if args.cmd == "vllm-flags":
        from llmkit.lifecycle import cli_flags
        from llmkit.models import llm_kwargs

        print(" ".join(cli_flags(llm_kwargs())))
        return 0
    if args.cmd == "adapters":
        from llmkit import lora, tiny_poet

        log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
        try:
            built = {name: (lora.build_adapter(name, log=log) if args.force else lora.ensure_adapter(name, log=log))
                     for name in lora.ADAPTERS}
        except tiny_poet.CorpusMissing as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print("\n".join(lora.module_flags(built)))
        return 0
    if args.cmd == "draft":
        from llmkit import spec, tiny_poet

        log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
        try:
            path = spec.ensure_draft(log=log, force=args.force)
        except tiny_poet.CorpusMissing as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(path)
        return 0
    if args.cmd == "cjk-font":
        from llmkit.logprobs import fetch_cjk_font

        path = fetch_cjk_font(log=lambda msg: print(msg, file=sys.stderr))
        print(path or "none: plot labels will use \\u escapes")
        return 0
    if args.cmd == "random-model":
        from llmkit import random_models

        if args.shape == "matrix":
            for path in random_models.build_matrix(args.out).values():
                print(path)
        else:
            print(random_models.build(args.out, args.shape))
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
