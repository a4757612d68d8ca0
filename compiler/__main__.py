import sys

from compiler.foundation.errors import CompilerError

try:
    from flows.cli import main
except CompilerError as error:  # found while importing the commands: an incomplete installation
    print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
    sys.exit(error.exit_status)

sys.exit(main())
