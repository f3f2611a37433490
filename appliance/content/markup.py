"""Lesson blocks -> safe HTML, done once at import time.

Course text is untrusted: every character is HTML-escaped first, and only then does the tiny Markdown
subset add tags of its own (paragraphs, headings, lists, bold, italic). Nothing a bundle contains can
produce a tag, attribute or URL of its choosing; asset URLs are built from validated asset names.
Headings start at <h2> because the lesson page owns <h1> (its title).
"""
from __future__ import annotations

import re
from html import escape
from urllib.parse import quote

_HEADING = re.compile(r"^(#{1,3})\s+(.*)$")
_UL = re.compile(r"^[-*]\s+(.*)$")
_OL = re.compile(r"^\d{1,3}[.)]\s+(.*)$")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_ITALIC = re.compile(r"(?<![*\w])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![*\w])")


def asset_url(course_id: str, name: str, sha256: str) -> str:
    """The URL of an asset. The ``v`` query changes when the bytes change, so browsers may cache the
    URL forever (``immutable``) and an upgraded course still shows its new pictures."""
    return f"/content/{quote(course_id)}/assets/{quote(name)}?v={sha256[:16]}"


def inline(text: str) -> str:
    out = escape(text, quote=True)
    out = _BOLD.sub(r"<strong>\1</strong>", out)
    return _ITALIC.sub(r"<em>\1</em>", out)


def render_markdown(text: str) -> str:
    out: list[str] = []
    para: list[str] = []
    items: list[str] = []
    list_tag = ""

    def flush_para():
        if para:
            out.append(f"<p>{inline(' '.join(para))}</p>")
            para.clear()

    def flush_list():
        nonlocal list_tag
        if items:
            out.append(f"<{list_tag}>" + "".join(f"<li>{inline(i)}</li>" for i in items) + f"</{list_tag}>")
            items.clear()
        list_tag = ""

    for line in text.splitlines():
        s = line.strip()
        if not s:
            flush_para()
            flush_list()
            continue
        if m := _HEADING.match(s):
            flush_para()
            flush_list()
            level = len(m.group(1)) + 1
            out.append(f"<h{level}>{inline(m.group(2))}</h{level}>")
        elif (m := _UL.match(s)) or (m := _OL.match(s)):
            flush_para()
            tag = "ul" if _UL.match(s) else "ol"
            if list_tag != tag:
                flush_list()
                list_tag = tag
            items.append(m.group(1))
        elif items and line[:1].isspace():
            items[-1] += " " + s  # an indented line continues the list item above it
        else:
            flush_list()
            para.append(s)
    flush_para()
    flush_list()
    return "\n".join(out)


def render_lesson(course_id: str, blocks: list[dict], assets: dict[str, dict]) -> tuple[str, list[dict]]:
    """``(html, media)`` of one lesson; ``media`` lists its video/audio/pdf blocks for the player."""
    html: list[str] = []
    media: list[dict] = []
    for block in blocks:
        kind = block["type"]
        if kind == "text":
            html.append(render_markdown(block["markdown"]))
            continue
        asset = assets[block["asset"]]
        url = escape(asset_url(course_id, block["asset"], asset["sha256"]), quote=True)
        mime = escape(asset["mime"], quote=True)
        if kind == "image":
            caption = f"<figcaption>{inline(block['caption'])}</figcaption>" if block.get("caption") else ""
            html.append(f'<figure class="lesson-image"><img src="{url}" alt="{escape(block["alt"], quote=True)}" '
                        f'loading="lazy">{caption}</figure>')
            continue
        title = escape(block["title"])
        media.append({"kind": kind, "asset": block["asset"], "title": block["title"],
                      "url": asset_url(course_id, block["asset"], asset["sha256"]), "mime": asset["mime"]})
        if kind == "pdf":
            html.append(f'<p class="lesson-pdf"><a href="{url}" type="{mime}">{title}</a></p>')
        else:
            player = (f'<{kind} controls preload="metadata"><source src="{url}" type="{mime}"></{kind}>')
            html.append(f'<figure class="lesson-{kind}">{player}<figcaption>{title}</figcaption></figure>')
        if block.get("transcript"):
            paras = "".join(f"<p>{escape(p.strip())}</p>" for p in block["transcript"].split("\n\n") if p.strip())
            html.append(f'<details class="transcript"><summary>{title}</summary>{paras}</details>')
    return "\n".join(html), media
