"""jupyter-jchannel's three tutorials (examples/local, binder and colab of its repository), step
by step, against jchannel_http with only the import changed, in a real Chromium page.

The tutorials run in a notebook, which loads the client into the tab by itself; here the test
opens ``server.page_url``. They use port 8889; here each run takes a free loopback port. The
Binder tutorial's ngrok tunnel and the Colab one's cloudflared tunnel are local stand-ins (a
loopback proxy for ngrok, and the fake cloudflared of tests/fixtures/bin, which holds GET
responses as the real one does).
"""

from __future__ import annotations

import asyncio
import sys

from compat_helpers import (  # type: ignore[import-not-found]  # a sibling module, on sys.path by pytest
    LOREM,
    CloudflareWrapper,
    NgrokStandIn,
    indentation_steps,
    load_client,
)

import jchannel_http as jchannel  # the one line that changes: was `import jchannel`
from jchannel_http.types import FrontendError, MetaGenerator  # was jchannel.types
from support.ports import free_port
from support.stand_ins import install_fake_cloudflared

HOST = '127.0.0.1'


async def test_the_local_tutorial(page, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'loremipsum.txt').write_text(LOREM)
    PORT = free_port()

    # Starting a server
    server = await jchannel.start(host=HOST, port=PORT)
    try:
        await load_client(page, server)

        # Opening a channel, calling its methods (example 1)
        await indentation_steps(server, jchannel, FrontendError)

        # Example 2: calling the kernel from the page
        channel2 = await server.open("""
            (channel) => {
                self.channel2 = channel;
            }
        """)

        class Handler:
            def multiply(self, a, b):
                return a * b

            def divide(self, a, b):
                return a / b

        channel2.handler = Handler()
        assert await page.evaluate("channel2.call('multiply', 6, 7)") == 42
        error = await page.evaluate(
            "channel2.call('divide', 1, 0).then(() => null, (e) => [e.name, e.message])"
        )
        assert error[0] == 'KernelError' and 'ZeroDivisionError' in error[1]

        # Example 3: byte streams
        with open('loremipsum.txt') as file:
            text = file.read()
        channel3 = await server.open("""
            (channel) => {
                channel.handler = {

                    async len(stream) {
                        let total = 0;

                        for await (const chunk of stream) {
                            total += chunk.length;
                        }

                        return total;
                    },

                };
            }
        """)

        async def input_stream():
            with open('loremipsum.txt') as file:
                for line in file:
                    yield line.encode()

        assert await channel3.call_with_stream('len', input_stream()) == len(text.encode())

        channel4 = await server.open("""
            (channel) => {
                channel.handler = {

                    async * upper(stream) {
                        const decoder = new TextDecoder();
                        const encoder = new TextEncoder();

                        for await (const chunk of stream) {
                            const line = decoder.decode(chunk);
                            yield encoder.encode(line.toUpperCase());
                        }
                    },

                };
            }
        """)
        output_stream = await channel4.call_with_stream('upper', input_stream())
        assert isinstance(output_stream, MetaGenerator)
        printed = []
        async for chunk in output_stream:
            printed.append(chunk.decode())
        assert ''.join(printed) == text.upper()
        assert page.errors == []
    finally:
        await server.stop()


async def test_the_binder_tutorial_through_an_ngrok_stand_in(page, monkeypatch) -> None:
    ngrok = NgrokStandIn()
    monkeypatch.setitem(sys.modules, 'ngrok', ngrok)
    import ngrok as imported  # the tutorial's `import ngrok`

    assert imported is ngrok
    PORT = free_port()
    monkeypatch.setenv('NGROK_AUTHTOKEN', 'YOUR_NGROK_AUTHTOKEN')  # os.environ[...] = ...

    listener = await ngrok.forward(addr=PORT, authtoken_from_env=True)
    url = listener.url()
    server = await jchannel.start(host=HOST, port=PORT, url=url)
    try:
        assert server.url == url and server.page_url.startswith(url)
        await load_client(page, server)  # the tab reaches the kernel through the tunnel
        assert page.url.startswith(url)
        await indentation_steps(server, jchannel, FrontendError)
        assert ngrok.forwarded == [(PORT, True, {})]
    finally:
        await server.stop()
        await ngrok.close()


async def test_the_colab_tutorial_through_the_fake_cloudflared(
    browser, tmp_path, monkeypatch
) -> None:
    fake = install_fake_cloudflared(tmp_path, monkeypatch)
    PORT = free_port()
    tunnel = CloudflareWrapper('cloudflared')  # the tutorial downloads ./cloudflared
    url = await asyncio.to_thread(tunnel.ingress, HOST, PORT)
    try:
        server = await jchannel.start(host=HOST, port=PORT, url=url)
        try:
            async with fake.session() as http:  # the tutorial waits a few seconds instead
                for _ in range(100):
                    try:
                        async with http.get(f'{url}/openapi.json') as response:
                            if response.status == 200:
                                break
                    except OSError:
                        pass
                    await asyncio.sleep(0.1)
            context = await browser.new_context(ignore_https_errors=True)  # the fake's own CA
            page = await context.new_page()
            await load_client(page, server)
            assert page.url.startswith(url)
            await indentation_steps(server, jchannel, FrontendError)
            assert server.status()['transport'] == 'sse-post'  # the tunnel holds GET streams
            await context.close()
        finally:
            await server.stop()
    finally:
        tunnel.egress()
