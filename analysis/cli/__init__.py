"""``python -m analysis ...``: the headless CLI (train, models, evaluate, report, claims, import, construct, landscape,
deletion, curvature, analyses). ``main`` builds the parser from the commands (``commands.py``) and the checked argument types
(``args.py``), runs one command, and turns every expected failure into one line and an exit status."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from ..engine.context import DEFAULT_SAMPLES

from .args import (_arch_list, _int_list, _model_list, _nonneg_float, _nonneg_int, _out_dir, _positive_float,
                   _positive_int, _shared)
from .commands import (_cmd_analyses, _cmd_claims, _cmd_construct, _cmd_curvature, _cmd_deletion, _cmd_evaluate,
                       _cmd_import, _cmd_landscape, _cmd_models, _cmd_report, _cmd_train)
from .commands import parse_params  # noqa: F401  (the tests read it from here)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis", description="ResLens: why residual networks train")
    sub = p.add_subparsers(dest="cmd", required=True)
    common = _shared()

    t = sub.add_parser("train", parents=[common], help="train one or more nets (comma-separated) and write pretrained/NAME.*")
    t.add_argument("names", type=_arch_list, help="e.g. resnet20 or plain20,resnet20 (trained together on one device)")
    t.add_argument("--epochs", type=_positive_float, default=None, help="shorter schedule (default: the paper's 64k iterations)")
    t.add_argument("--schedule", choices=["step", "onecycle"], default="step")
    t.add_argument("--lr", type=_positive_float, default=0.1)
    t.add_argument("--batch", type=_positive_int, default=128)
    t.add_argument("--out", type=_out_dir, default=str(_pretrained()))
    t.add_argument("--time-limit", type=_nonneg_float, default=None, help="seconds; pause with a resume point before it")
    t.add_argument("--no-graphs", action="store_true", help="on CUDA, run eagerly instead of replaying CUDA graphs")
    t.add_argument("--stop-after-epoch", type=_positive_int, default=None,
                   help="end the run after this epoch and write the model (the card records the early stop)")
    t.add_argument("--finish-file", default=None,
                   help="end the run after the epoch in which this file appears (the card records the early stop)")
    t.set_defaults(func=_cmd_train)

    m = sub.add_parser("models", help="print the zoo as a table")
    m.add_argument("--root", default=None)
    m.set_defaults(func=_cmd_models)

    e = sub.add_parser("evaluate", parents=[common], help="measure a shipped model's test error")
    e.add_argument("name", type=_model_list)
    e.add_argument("--samples", type=_positive_int, default=None, help="a seeded random subset of the test split")
    e.add_argument("--fp32", action="store_true", help="evaluate in float32 instead of bfloat16 autocast")
    e.set_defaults(func=_cmd_evaluate)

    r = sub.add_parser("report", parents=[common], help="run every analysis and write one CSV each plus manifest.json")
    r.add_argument("--models", type=_model_list, default="plain20,plain56,resnet20,resnet56,resnet110",
                   help="comma-separated zoo names, variants included (e.g. resnet56,resnet56-preact,resnet56-scale0.5)")
    r.add_argument("--samples", type=_positive_int, default=DEFAULT_SAMPLES)
    r.add_argument("--out", type=_out_dir, required=True)
    r.add_argument("--only", default=None, help="comma-separated analyses or groups (`python -m analysis analyses`)")
    r.add_argument("--param", action="append", default=None, metavar="ANALYSIS.NAME=VALUE",
                   help="replace a default, e.g. --param deletion_random.trials=10 (repeatable)")
    r.set_defaults(func=_cmd_report)

    c = sub.add_parser("claims", parents=[common], help="judge every claim of the notes by a measurement; writes claims.csv and claims.md")
    c.add_argument("--models", type=_model_list, default="plain20,plain56,plain110,resnet20,resnet56,resnet110,"
                                                          "resnet56-preact,resnet56-bnafter,resnet56b,resnet56-scale0.5,"
                                                          "resnet56-scale0.5f")
    c.add_argument("--samples", type=_positive_int, default=DEFAULT_SAMPLES)
    c.add_argument("--out", type=_out_dir, required=True)
    c.add_argument("--no-heavy", action="store_true", help="leave out the claims that take minutes (curvature)")
    c.add_argument("--quick", action="store_true", help="light settings for every measurement (a smoke run)")
    c.set_defaults(func=_cmd_claims)

    im = sub.add_parser("import", parents=[_shared(seed=False)],
                        help="convert a checkpoint (.safetensors .pt .pth .th .ckpt) into an imported model")
    im.add_argument("file")
    im.add_argument("--name", required=True)
    kind = im.add_mutually_exclusive_group()
    kind.add_argument("--residual", action="store_true", help="an option-A net with shortcuts")
    kind.add_argument("--plain", action="store_true", help="an option-A net without shortcuts")
    im.add_argument("--normalization", default=None,
                    help="the input normalisation it was trained with: cifar10, imagenet, none or 'm,m,m/s,s,s' "
                         "(default: the metadata's, else the key layout's)")
    im.add_argument("--samples", type=_positive_int, default=None, help="measure the test error on a seeded subset")
    im.add_argument("--out", type=_out_dir, default=None, help="folder (default: $RESLENS_IMPORTED, else ~/.reslens/models)")
    im.set_defaults(func=_cmd_import)

    co = sub.add_parser("construct", parents=[_shared(seed=False)],
                        help="a deeper net made of a trained one plus identity blocks (He et al. 2015, section 1)")
    co.add_argument("source", type=_model_list, help="a trained model, e.g. plain20")
    co.add_argument("--depth", type=_positive_int, required=True, help="the deeper net's depth (6n+2), e.g. 56")
    co.add_argument("--name", required=True)
    co.add_argument("--samples", type=_positive_int, default=None, help="test images to measure on (default: all)")
    co.add_argument("--train-samples", type=_positive_int, default=None,
                    help="training images to measure on (default: all)")
    co.add_argument("--out", type=_out_dir, default=None, help="folder (default: $RESLENS_IMPORTED, else ~/.reslens/models)")
    co.set_defaults(func=_cmd_construct)

    la = sub.add_parser("landscape", parents=[common], help="a loss-landscape grid as one sweep (torchrun shards it; resumable)")
    la.add_argument("--models", type=_model_list, default="resnet56")
    la.add_argument("--steps", type=_positive_int, default=51, help="grid points per axis")
    la.add_argument("--radius", type=_positive_float, default=1.0)
    la.add_argument("--dims", type=int, choices=[1, 2], default=2)
    la.add_argument("--samples", type=_positive_int, default=10000)
    la.add_argument("--points-per-pass", type=_positive_int, default=1,
                    help="grid points evaluated together with torch.func.vmap (faster on a GPU)")
    la.add_argument("--fp32", action="store_true", help="float32 instead of bfloat16 autocast")
    la.add_argument("--out", type=_out_dir, required=True)
    la.add_argument("--no-resume", dest="resume", action="store_false",
                    help="do not keep finished points on disk (a rerun starts over)")
    la.set_defaults(func=_cmd_landscape)

    de = sub.add_parser("deletion", parents=[common], help="random block deletion, k x trials, as one sweep (torchrun shards it)")
    de.add_argument("--models", type=_model_list, default="resnet56,resnet110")
    de.add_argument("--ks", type=_int_list, default=None, help="comma-separated k (default: the deletion analysis' own)")
    de.add_argument("--trials", type=_positive_int, default=None, help="default: the deletion analysis' own")
    de.add_argument("--samples", type=_positive_int, default=DEFAULT_SAMPLES)
    de.add_argument("--out", type=_out_dir, required=True)
    de.add_argument("--no-resume", dest="resume", action="store_false")
    de.set_defaults(func=_cmd_deletion)

    cu = sub.add_parser("curvature", parents=[common], help="Hessian eigenvalues, trace and density; torchrun splits every "
                                                             "Hessian-vector product across the ranks by images")
    cu.add_argument("--models", type=_model_list, default="plain56,resnet56")
    # default: the curvature analysis' own parameters (analysis/analyses/hessian.py)
    cu.add_argument("--images", type=_positive_int, default=None)
    cu.add_argument("--top-k", type=_positive_int, default=None)
    cu.add_argument("--max-iter", type=_positive_int, default=None)
    cu.add_argument("--tol", type=_positive_float, default=None)
    cu.add_argument("--trace-iter", type=_nonneg_int, default=None)
    cu.add_argument("--lanczos-steps", type=_nonneg_int, default=None)
    cu.add_argument("--method", choices=["auto", "func", "double_backward", "kept_graph"], default=None)
    cu.add_argument("--eigen", choices=["lanczos", "power"], default=None,
                    help="top eigenvalues by Lanczos (default; its basis deflates the trace) or power iteration")
    cu.add_argument("--out", type=_out_dir, required=True)
    cu.set_defaults(func=_cmd_curvature)

    an = sub.add_parser("analyses", help="list the registered analyses, their tables and parameters")
    an.set_defaults(func=_cmd_analyses)

    a = p.parse_args(argv)
    a.command_line = "python -m analysis " + shlex.join(sys.argv[1:] if argv is None else argv)
    from ..engine import distributed as dd
    from ..core.data import DataNotFound
    from ..core.zoo import CheckpointError

    w = dd.init(getattr(a, "device", None))
    try:
        return a.func(a)
    except (DataNotFound, CheckpointError, ValueError, KeyError) as e:
        msg = str(e).strip("'\"") if isinstance(e, KeyError) else str(e)
        print(f"error: {msg}" if not w.distributed else f"error (rank {w.rank}): {msg}", file=sys.stderr)
        return 2
    except dd.RankFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except BrokenPipeError:  # the output was piped into `head` and the like
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        kept = " Finished items of the sweep are kept; the same command resumes." if getattr(a, "resume", False) \
            else " Training keeps its last finished epoch; the same command resumes." if a.cmd == "train" else ""
        print(f"\ninterrupted: nothing was written.{kept}", file=sys.stderr)
        return 130
    finally:
        dd.finish()


if __name__ == "__main__":
    sys.exit(main())


def _pretrained():
    from ..core.zoo import PRETRAINED

    return PRETRAINED
