"""Command line.

``python -m jchannel_http demo [--host H] [--port P]``: serve a demo page until interrupted.
``python -m jchannel_http doctor URL [--token T] [--proxy P]``: probe a running server through
the path (and the forward proxy the browser uses).
``python -m jchannel_http --version``: print the version.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from ._version import __version__
from .tools import demo, doctor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m jchannel_http')
    parser.add_argument('--version', action='version', version=f'jchannel_http {__version__}')
    commands = parser.add_subparsers(dest='command', required=True)
    demo_parser = commands.add_parser('demo', help='serve a demo page until interrupted')
    demo_parser.add_argument('--host', default='127.0.0.1')
    demo_parser.add_argument(
        '--port',
        type=int,
        default=8765,
        help='port to listen on (0 picks a free one; default 8765)',
    )
    demo_parser.add_argument(
        '--interval',
        type=float,
        default=2.0,
        help='seconds between the calls the kernel makes into the page',
    )
    demo_parser.add_argument(
        '--calls',
        type=int,
        default=None,
        metavar='N',
        help='make N calls into the page, then only answer (default: no '
        'end; a small N keeps the frame numbers of a session driven '
        'by hand with curl as README shows them)',
    )
    doctor_parser = commands.add_parser(
        'doctor',
        help='probe a running server through whatever sits in between',
        description='Probe a running kernel server the way the page client does, print a '
        'table of what works, the transport the client will use and what to change. '
        'Exit status 1 when no transport works.',
    )
    doctor_parser.add_argument('url', help='server.url, or server.page_url (it carries the token)')
    doctor_parser.add_argument('--token', help='server.token (not needed with server.page_url)')
    doctor_parser.add_argument(
        '-H',
        '--header',
        action='append',
        default=[],
        metavar='"NAME: VALUE"',
        help='an extra header for every request, e.g. a login cookie',
    )
    doctor_parser.add_argument(
        '--deadline',
        type=float,
        default=3.0,
        help='seconds an event stream may take to deliver its first event',
    )
    doctor_parser.add_argument(
        '--proxy',
        metavar='URL',
        help='the forward proxy the browser uses (http://host:port); '
        'without it HTTPS_PROXY, HTTP_PROXY and NO_PROXY decide',
    )
    doctor_parser.add_argument('--json', action='store_true', help='print the report as JSON')
    args = parser.parse_args(argv)
    if args.command == 'doctor':
        return run_doctor(parser, args)
    try:
        if args.calls is not None and args.calls < 0:
            parser.error('--calls must be 0 or more')
        if not args.interval >= 0:
            parser.error('--interval must be 0 or more seconds')
        asyncio.run(demo.run(args.host, args.port, args.interval, args.calls))
    except KeyboardInterrupt:
        print('stopped', file=sys.stderr)
    return 0


def run_doctor(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Print the doctor's report; 0 when a transport works, else 1."""
    headers = {}
    for header in args.header:
        name, separator, value = header.partition(':')
        if not separator or not name.strip():
            parser.error(f'--header {header!r} must look like "Name: value"')
        headers[name.strip()] = value.strip()
    if not args.url.startswith(('http://', 'https://')):
        parser.error(f'{args.url!r} is not an http(s) URL: give server.url or server.page_url')
    if args.proxy is not None and not args.proxy.startswith(('http://', 'https://')):
        parser.error(f'--proxy {args.proxy!r} is not an http(s) URL: give it as http://host:port')
    report = doctor.diagnose(
        args.url, args.token, headers, deadline=args.deadline, proxy=args.proxy
    )
    if args.json:
        sys.stdout.buffer.write(report.as_json() + b'\n')
    else:
        print(report.render())
    return report.exit_status


if __name__ == '__main__':
    sys.exit(main())
