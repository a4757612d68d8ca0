import signal
import sys

from compiler.cli import main, terminate_as_exit

signal.signal(signal.SIGTERM, terminate_as_exit)
sys.exit(main())
