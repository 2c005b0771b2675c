"""The OpenAPI description says exactly which endpoints need the token: each of its paths,
requested without one, is refused (401) when it says so and served when it says it is public."""

from __future__ import annotations

import re

import aiohttp

from jchannel_http.http.app import make_app
from jchannel_http.http.openapi import PUBLIC_PATHS

PLACEHOLDER = re.compile(r'\{[^}]+\}')


async def test_every_path_needs_the_token_exactly_when_the_description_says_so(server) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + '/openapi.json') as response:
            assert response.status == 200
            document = await response.json()
        assert document['security'] == [{'bearer': []}, {'token': []}]
        checked = 0
        for path, operations in document['paths'].items():
            for method, operation in operations.items():
                public = operation.get('security', document['security']) == []
                assert public == (path in PUBLIC_PATHS), (method, path)
                url = server.url + PLACEHOLDER.sub('x', path)
                async with http.request(method.upper(), url, allow_redirects=False) as answer:
                    await answer.read()
                    if public:
                        assert answer.status < 300, (method, path, answer.status)
                    else:
                        assert answer.status == 401, (method, path, answer.status)
                        assert (await answer.json())['error'] == 'unauthorized'
                checked += 1
        assert checked >= 15
        description = document['info']['description']
        named = set(re.findall(r'(/[a-z.]+)(?=[, ])', description.split('except', 1)[1]))
        assert named == set(PUBLIC_PATHS), description


def test_every_route_of_the_app_is_described(server) -> None:
    from jchannel_http.http.openapi import describe

    document = describe(server.url)
    app = make_app(server.endpoint, 'unused-token', server.connections)
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != 'HEAD' and route.resource is not None
    }
    described = {
        (method, path) for path, operations in document['paths'].items() for method in operations
    }
    assert routes == described
