"""Command line: ``python -m jchannel_http demo [--host H] [--port P]``."""

from __future__ import annotations

import argparse
import asyncio
import sys

from . import demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m jchannel_http')
    commands = parser.add_subparsers(dest='command', required=True)
    demo_parser = commands.add_parser('demo', help='serve a demo page until interrupted')
    demo_parser.add_argument('--host', default='127.0.0.1')
    demo_parser.add_argument('--port', type=int, default=8765,
                             help='port to listen on (0 picks a free one; default 8765)')
    demo_parser.add_argument('--interval', type=float, default=2.0,
                             help='seconds between the calls the kernel makes into the page')
    args = parser.parse_args(argv)
    try:
        asyncio.run(demo.run(args.host, args.port, args.interval))
    except KeyboardInterrupt:
        print('stopped', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
