"""mkdocs hook: the documentation site is made of the repository's own files, at their own paths.

README.md becomes the home page, ``docs/protocol.md``, ``tunnel_guides/*.md``, ``CHANGELOG.md`` and
the benchmark results keep their paths, so the relative links that work on the repository's
files work on the site as they are. ``docs/site/`` (the ``docs_dir``) holds the pages that exist
only on the site, such as the API reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent

PATTERNS = ('README.md', 'CHANGELOG.md', 'docs/*.md', 'tunnel_guides/*.md', 'benchmarks/*.md',
            'benchmarks/*.png', 'examples/*.ipynb')


def on_files(files: Files, config: MkDocsConfig, **_: Any) -> Files:
    """Add the repository's documentation files to the site, each under its repository path."""
    for pattern in PATTERNS:
        for path in sorted(ROOT.glob(pattern)):
            uri = path.relative_to(ROOT).as_posix()
            if files.get_file_from_path(uri) is not None:
                raise ValueError(f'{uri} is both a repository file and a page of docs/site/')
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
