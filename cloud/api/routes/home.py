"""The ledger's landing page at `/`: what this service is, the log's size and signed
checkpoint, and links to the API. The first URL a newcomer opens (the demo prints it), so it
answers in plain HTML that reads on a phone; machines use the JSON routes it links to."""

from __future__ import annotations

from html import escape

from aiohttp import web

from cloud.api.state import LOG

routes = web.RouteTableDef()

LINKS = (
    ("/v1/checkpoint", "the signed checkpoint (C2SP signed note): the log's size and root"),
    ("/v1/log/vkey", "the log's verifier key: save it once, pin it in every check"),
    ("/v1/devices", "registered sensor boxes and their last stored reading"),
    ("/v1/gateways", "registered gateways"),
    ("/v1/openapi.json", "the API, as an OpenAPI 3.1 document"),
    ("/metrics", "Prometheus metrics"),
    ("/healthz", "health check"),
)

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>PharmaSync ledger {origin}</title>
<style>
  body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 0 auto;
         padding: 1rem; color: #1b1f23; }}
  h1 {{ font-size: 1.4rem; margin-bottom: .2rem; }}
  code, pre {{ font: .85rem ui-monospace, monospace; overflow-wrap: anywhere; }}
  pre {{ background: #f4f5f7; padding: .6rem; white-space: pre-wrap; }}
  dl {{ display: grid; grid-template-columns: max-content 1fr; gap: .2rem .8rem; }}
  dt {{ font-weight: 600; }} dd {{ margin: 0; overflow-wrap: anywhere; }}
  li {{ margin: .3rem 0; }}
</style>
</head>
<body>
<h1>PharmaSync ledger</h1>
<p>This service keeps a verifiable log (RFC 6962) of signed batches of cold-chain
readings: each reading is signed by its sensor box, each batch by the site's gateway, and
each state of the log by the key below. Anyone can check a reading without trusting this
server: fetch its proof bundle and run <code>pharmasync verify</code> with the log's key.</p>
<dl>
  <dt>log</dt><dd><code>{origin}</code></dd>
  <dt>entries</dt><dd id="log-size">{size}</dd>
  <dt>root hash</dt><dd><code>{root}</code></dd>
  <dt>log key</dt><dd><code>{vkey}</code></dd>
</dl>
<h2>Signed checkpoint</h2>
<pre>{note}</pre>
<h2>API</h2>
<ul>
{links}
</ul>
<h2>Check a reading</h2>
<pre>curl -s {base}/v1/log/vkey -o ledger.vkey
curl -s {base}/v1/readings/BOX_KEY/SEQ/proof -o bundle.json
pharmasync verify bundle.json --log-vkey @ledger.vkey</pre>
</body>
</html>
"""


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    """The landing page: what this ledger is, its latest checkpoint, and the API's links."""
    log = request.app[LOG]
    cp = await log.refresh()
    links = "\n".join(
        f'<li><a href="{path}">{path}</a>: {escape(what)}</li>' for path, what in LINKS
    )
    page = PAGE.format(
        origin=escape(log.origin),
        size=f"{cp.size:,}",
        root=cp.root.hex(),
        vkey=escape(log.log_vkey),
        note=escape(cp.note),
        links=links,
        base=escape(f"{request.scheme}://{request.host}"),
    )
    return web.Response(text=page, content_type="text/html")
