"""What the tests share: fake pages, ports, waiting, the browser, proxies and stand-ins."""
