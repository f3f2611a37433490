from appliance.content.markup import render_lesson, render_markdown


def test_everything_is_escaped_before_markup():
    html = render_markdown('<script>alert(1)</script> **<b>x</b>** "q" & <img src=x onerror=y>')
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html and "<strong>&lt;b&gt;x&lt;/b&gt;</strong>" in html and "&amp;" in html


def test_markdown_subset():
    html = render_markdown("# Title\n\nOne *two* **three**\nstill para\n\n- a\n- b\n  continued\n\n1. x\n2. y\n### Small")
    assert html.splitlines() == [
        "<h2>Title</h2>",
        "<p>One <em>two</em> <strong>three</strong> still para</p>",
        "<ul><li>a</li><li>b continued</li></ul>",
        "<ol><li>x</li><li>y</li></ol>",
        "<h4>Small</h4>",
    ]
    # Arithmetic is not emphasis.
    assert render_markdown("2 * 3 * 4 = 24") == "<p>2 * 3 * 4 = 24</p>"


def test_blocks_become_figures_players_and_links():
    assets = {"p.svg": {"sha256": "a" * 64, "mime": "image/svg+xml"},
              "v.mp4": {"sha256": "b" * 64, "mime": "video/mp4"},
              "d.pdf": {"sha256": "c" * 64, "mime": "application/pdf"}}
    html, media = render_lesson("c1", [
        {"type": "image", "asset": "p.svg", "alt": 'a "quoted" <alt>', "caption": "*cap*"},
        {"type": "video", "asset": "v.mp4", "title": "<Watch>", "transcript": "Para one.\n\nPara <two>."},
        {"type": "pdf", "asset": "d.pdf", "title": "Sheet"},
    ], assets)
    assert '<img src="/content/c1/assets/p.svg?v=aaaaaaaaaaaaaaaa" alt="a &quot;quoted&quot; &lt;alt&gt;"' in html
    assert "<figcaption><em>cap</em></figcaption>" in html
    assert '<video controls preload="metadata"><source src="/content/c1/assets/v.mp4?v=bbbbbbbbbbbbbbbb" type="video/mp4">' in html
    assert "<figcaption>&lt;Watch&gt;</figcaption>" in html and "<p>Para &lt;two&gt;.</p>" in html
    assert '<a href="/content/c1/assets/d.pdf?v=cccccccccccccccc" type="application/pdf">Sheet</a>' in html
    assert [m["kind"] for m in media] == ["video", "pdf"] and media[0]["title"] == "<Watch>"
