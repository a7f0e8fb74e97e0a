"""The `kdlib` command line: the runner, each stage's builder, the teacher, and the params reference.

    kdlib run PARAMS [--only NN ...] [--from NN] [--force] [--plan]
    kdlib pseudo-label PARAMS          (stage 01; `accelerate launch -m kdlib pseudo-label PARAMS` on N GPUs)
    kdlib filter PARAMS                (stage 02)
    kdlib distill PARAMS [--student DW-e-d --threshold λ --pool NAME] [--no-resume]   (stage 03, also under accelerate)
    kdlib evaluate PARAMS              (stage 04)
    kdlib error-analysis PARAMS        (stage 05)
    kdlib teacher PARAMS [--retrain]   (find, train or make the teacher, print where it is)
    kdlib params [PARAMS]              (every param with its default and help, or a file's values)
    kdlib push-to-hub FOLDER OWNER/NAME [--private] [--dry-run]
    kdlib push-to-hub PARAMS OWNER/NAME --student DW-e-d --threshold λ [--pool NAME] [--dry-run]
                                       (upload a trained student's folder with its card to the Hugging Face Hub)

Every command that reads PARAMS takes `--set KEY=VALUE` (repeatable; e.g. `--set distill.training.max_steps=50`,
`--set filter.thresholds=[10,80]`): the value, read as YAML, replaces the file's, is validated like it and is
recorded in the stage manifests and the run log.
Every command validates the params first and fails with one line per problem (every problem of the
file at once): exit 2 for bad params or arguments, 1 when a stage fails (a missing or stale input names the stage to
run, an unwritable folder its path, another run of the same run folder its pid and command), 130 on Ctrl-C, 143 on
SIGTERM. Output into a pipe that closes early (`kdlib params | head`) ends quietly, exit 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

from kdlib.config import (
    ParamsError,
    describe_params,
    load_params,
    params_arguments,
    params_to_dict,
    parse_student,
    parse_threshold,
)
from kdlib.pipeline.graph import STAGES, MissingProduct, StaleProduct, build, stage_named
from kdlib.pipeline.runlock import run_lock
from kdlib.storage.processes import Terminated, sigterm_raises

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kdlib", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"kdlib {version('kdlib')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="build the stale stages and render every report")
    run.add_argument("params", type=Path, help="params YAML file, e.g. params/tiny.yaml")
    _add_set(run)
    run.add_argument("--only", nargs="+", action="extend", metavar="NN", help="only these stages (e.g. 03)")
    run.add_argument("--from", dest="start", metavar="NN", help="from this stage on")
    run.add_argument("--force", action="store_true", help="rebuild the selected stages even if up to date")
    run.add_argument("--plan", action="store_true", help="print the plan and stop")
    run.add_argument("--kernel", default="python3", help="Jupyter kernel of the notebooks")

    for stage in STAGES:
        sub = commands.add_parser(stage.command, help=f"stage {stage.number}: {stage.summary}")
        sub.add_argument("params", type=Path, help="params YAML file")
        _add_set(sub)
        if stage.command == "distill":
            sub.add_argument("--student", help="one student, e.g. DW-2-2 (default: every run in params)")
            sub.add_argument("--threshold", help="with --student: its λ in percent, or 'none'")
            sub.add_argument("--pool", help="with --student: its pool (default: data.default_pool)")
            sub.add_argument("--no-resume", action="store_true", help="with --student: start from scratch")

    teacher = commands.add_parser("teacher", help="find, train or make the teacher; print where it is")
    teacher.add_argument("params", type=Path, help="params YAML file")
    teacher.add_argument(
        "--retrain", action="store_true", help="train it by teacher.architecture/training; write it to teacher.model"
    )
    _add_set(teacher)

    push = commands.add_parser("push-to-hub", help="upload a trained student's folder with its card to the Hub")
    push.add_argument("source", type=Path, help="a trained model's folder, or a params file with --student")
    push.add_argument("repo_id", metavar="OWNER/NAME", help="the Hub repository (created if missing)")
    push.add_argument("--student", help="with a params file: the student, e.g. DW-2-2 (stage 03's record)")
    push.add_argument("--threshold", help="with --student: its λ in percent, or 'none'")
    push.add_argument("--pool", help="with --student: its pool (default: data.default_pool)")
    push.add_argument("--private", action="store_true", help="create the repository private")
    push.add_argument("--revision", help="the branch to push to (default: main)")
    push.add_argument("--dry-run", action="store_true", help="list the files that would be uploaded; send nothing")
    _add_set(push)

    reference = commands.add_parser("params", help="every param with its default and help (or a file's values)")
    reference.add_argument("params", type=Path, nargs="?", help="params YAML file to show, validated")
    reference.add_argument("--markdown", action="store_true", help="the reference as a Markdown table (docs/params.md)")
    _add_set(reference)
    return parser


def _add_set(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set one param over the file's value (repeatable; VALUE is YAML, e.g. distill.training.max_steps=50)",
    )


def _model_folder(args: argparse.Namespace) -> Path:
    """The folder `kdlib push-to-hub` uploads: SOURCE itself, or the model of --student in stage 03's records."""
    if args.source.is_dir():
        if args.student or args.threshold or args.pool or args.settings:
            raise ParamsError("--student, --threshold, --pool and --set need a params file, not a model folder")
        return args.source
    if not args.student:
        raise ParamsError(f"{args.source}: not a model folder; with a params file, name the model with --student")
    from kdlib.config import run_name, threshold_label
    from kdlib.stages.products import read_students

    parse_student(args.student)
    params = load_params(args.source, settings=args.settings)
    pool = args.pool or params.data.default_pool
    label = threshold_label(parse_threshold(args.threshold or "none"))
    wanted = f"{run_name(args.student, pool, params.data.default_pool)} λ={label}"
    records = read_students(params)
    for record in records:
        if (record["student"], record["pool"] or params.data.default_pool, record["threshold"]) == (
            args.student,
            pool,
            label,
        ):
            if record["model_dir"] is None:
                raise ParamsError(f"{wanted} was not trained ({record['status']}): nothing to push")
            return Path(record["model_dir"])
    trained = [f"{run_name(r['student'], r['pool'], params.data.default_pool)} λ={r['threshold']}" for r in records]
    raise ParamsError(f"{wanted} is not among stage 03's students ({', '.join(trained) or 'none'})")


def _run(args: argparse.Namespace) -> None:
    if args.command not in ("params", "push-to-hub"):
        from kdlib.storage.progress import quiet_libraries

        quiet_libraries()
    if args.command == "run":
        from kdlib.run import run_pipeline

        run_pipeline(
            args.params,
            args.only,
            args.start,
            force=args.force,
            plan_only=args.plan,
            kernel_name=args.kernel,
            settings=args.settings,
        )
    elif args.command == "params":
        if args.params is not None:
            print(
                json.dumps(
                    params_to_dict(load_params(args.params, settings=args.settings)), indent=1, ensure_ascii=False
                )
            )
        elif args.settings:
            raise ParamsError("--set needs a params file: kdlib params PARAMS --set KEY=VALUE")
        elif args.markdown:
            print(params_markdown(), end="")
        else:
            for key, default, text in describe_params():
                print(f"{key:<52} {default:<22} {text}" if default else f"\n{key}: {text}")
    elif args.command == "push-to-hub":
        from kdlib.models.hub import plan_upload, push_to_hub

        folder = _model_folder(args)
        if args.dry_run:
            print(plan_upload(folder, args.repo_id).describe())
        else:
            print(push_to_hub(folder, args.repo_id, private=args.private, revision=args.revision))
    elif args.command == "teacher":
        from kdlib.models.teacher import find_teacher, retrain

        params = load_params(args.params, settings=args.settings)
        print(retrain(params) if args.retrain else find_teacher(params))
    elif args.command == "distill" and args.student:
        from kdlib.stages.distill import distill_one

        parse_student(args.student)
        from accelerate import PartialState

        from kdlib.models.runtime import cpu_only

        params = load_params(args.params, settings=args.settings)
        try:
            params.data.pool(args.pool)
        except ParamsError as error:
            raise ParamsError(f"--pool {args.pool}: {error}") from None
        threshold = parse_threshold(args.threshold or "none")
        result = distill_one(params, args.student, threshold, args.pool, resume=not args.no_resume)
        if PartialState(cpu=cpu_only(params.device)).is_main_process:
            print(json.dumps(asdict(result), ensure_ascii=False))
    else:
        if getattr(args, "threshold", None) or getattr(args, "pool", None) or getattr(args, "no_resume", False):
            raise ParamsError("--threshold, --pool and --no-resume need --student")
        params = load_params(args.params, settings=args.settings)
        with run_lock(params, shlex.join(["kdlib", args.command, *params_arguments(params)])):
            manifest = build(params, stage_named(args.command))
        if manifest:
            print(json.dumps(manifest["counts"], ensure_ascii=False))


def params_markdown() -> str:
    """Every param as a Markdown table: key, default, help (what `docs/params.md` holds)."""
    lines = [
        "# Params reference",
        "",
        "Generated by `kdlib params --markdown`; a test keeps it in step with `kdlib/config/schema.py`.",
        "",
        "| key | default | meaning |",
        "| --- | --- | --- |",
    ]
    for key, default, text in describe_params():
        shown = f"`{default}`" if default else "*section*"
        lines.append(f"| `{key}` | {shown} | {text.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `kdlib` and `python -m kdlib`; the exit code."""
    args = _parser().parse_args(argv)
    try:
        with sigterm_raises():
            _run(args)
            sys.stdout.flush()  # here, so that a closed pipe is met below and not at exit
    except BrokenPipeError:  # the reader of our output closed it (`kdlib params | head`): it has what it wanted
        try:  # nothing more to flush at exit: Python would report the closed pipe once more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # a stand-in stdout without a file descriptor
            pass
        return 0
    except Terminated:
        print("terminated (SIGTERM): finished steps are kept; the same command resumes", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("interrupted: finished steps are kept; the same command resumes", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ParamsError as error:
        for problem in error.problems or [str(error)]:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as error:  # PlanError is a ValueError
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return EXIT_USAGE
    except (MissingProduct, StaleProduct, OSError, RuntimeError) as error:  # NotebookError, TrainingDiverged, disk
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return EXIT_FAILED
    return 0
