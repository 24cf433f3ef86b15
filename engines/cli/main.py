"""`python main.py train|sample|encode|compare|info|datasets|directions …` — the command line, headless (never imports Qt or
the explorer). One module per command (`add_parser(sub)` + `cmd_…`), shared helpers in common.py;
this module builds the parser from them and dispatches.

User errors (bad data, bad checkpoint, bad settings) exit with status 2 and one line on stderr.
"""
from __future__ import annotations

import sys

from engines.cli import compare, datasets, directions, encode, evaluate, export, info, sample, train, train_prior
from engines.cli.common import USAGE_ERROR, UsageError, _Parser, _user_errors

__all__ = ["build_parser", "main", "UsageError", "USAGE_ERROR"]

COMMANDS = (train, train_prior, sample, encode, evaluate, compare, info, export, datasets, directions)


def build_parser(app_commands: dict[str, str] | None = None) -> _Parser:
    """`app_commands` (name → help) are listed in the help but run elsewhere: the repository's
    main.py dispatches them to the explorer (e.g. `screenshot`) before this parser sees them."""
    p = _Parser(prog="main.py", description="Latent Explorer: train generative models and explore their latent spaces. "
                "Run without arguments to open the app.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    for name, help_text in (app_commands or {}).items():
        sub.add_parser(name, help=help_text, add_help=False)
    return p


def main(argv: list[str] | None = None, app_commands: dict[str, str] | None = None) -> int:
    parser = build_parser(app_commands)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in (app_commands or {}):  # an app command that reached the headless command line
        sys.stderr.write(f"error: '{argv[0]}' is a command of the app: run `python main.py {argv[0]}`\n")
        return USAGE_ERROR
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a bad argument (one line already written) or --help
        return e.code if isinstance(e.code, int) else USAGE_ERROR
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    out = sys.stdout
    sys.stdout = _Output(out)
    try:
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # here, where a failure is one line, not at the interpreter's exit
        return rc
    except _user_errors() as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        sys.stderr.write(f"error: {msg}\n")
        return USAGE_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:  # output piped into `head` and friends
        return 0
    finally:
        sys.stdout = out


class _Output:
    """sys.stdout while a command runs: a failed write (`--json > file` on a full disk) becomes one
    WriteError line (exit 2) and the rest of the output goes nowhere, so the interpreter's own flush
    at exit reports nothing more."""

    def __init__(self, stream):
        self._stream = stream

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def write(self, text):
        return self._guarded(self._stream.write, text)

    def flush(self):
        return self._guarded(self._stream.flush)

    def _guarded(self, call, *args):
        import os

        from engines import atomic

        try:
            return call(*args)
        except BrokenPipeError:
            raise
        except OSError as e:
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._stream.fileno())
                os.close(devnull)
            except (OSError, ValueError, AttributeError):  # not a file (a test's capture): nothing to silence
                pass
            kind = atomic._WHAT.get(e.errno, "could not write")
            reason = e.strerror or type(e).__name__
            raise atomic.WriteError(f"{kind} writing the standard output ({reason}); the output is incomplete",
                                    e.errno) from None


if __name__ == "__main__":
    sys.exit(main())
