"""Checks that an HTML page is well-formed and self-contained (opens offline)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip
#: XML namespace names inside inline SVG are identifiers, not addresses that are fetched
NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.text_outside_scripts: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "action", "poster", "data") and value:
                if not value.startswith(("data:", "#")):
                    self.problems.append(f"<{tag} {name}={value[:60]!r}> points outside the file")
            if name == "style" and value and "url(" in value and "url(data:" not in value:
                self.problems.append(f"<{tag} style> loads {value[:60]!r}")
        if tag == "link":
            self.problems.append("a <link> element loads another file")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self.stack and self.stack[-1] == tag:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            if tag in self.stack:
                while self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()

    def handle_data(self, data):
        if not self.stack or self.stack[-1] != "script":
            self.text_outside_scripts.append(data)


def check_page(page: str) -> list[str]:
    """Every tag closed in order, nothing loaded from outside the file."""
    assert page.lstrip().lower().startswith("<!doctype html>")
    checker = _Checker()
    checker.feed(page)
    checker.close()
    problems = list(checker.problems)
    if checker.stack:
        problems.append(f"unclosed: {checker.stack}")
    # outside the inline scripts (library code), the page names no web address at all
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "", page, flags=re.S)
    for url in re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s\"'<>)]*", markup):
        if url not in NAMESPACES and not any(url.startswith(n) for n in NAMESPACES):
            problems.append(f"names an outside address: {url}")
    if "@import" in markup:
        problems.append("a style sheet imports another file")
    return problems


def assert_self_contained(page: str) -> None:
    problems = check_page(page)
    assert not problems, problems
