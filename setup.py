"""The package list, which pyproject.toml cannot express: every package found under jchannel_http/
(so subpackages are picked up by themselves) plus the page client, mapped from client_js/."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=['jchannel_http', 'jchannel_http.*']),
                'jchannel_http.client_js'])
