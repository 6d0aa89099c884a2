"""An extension written in Python: one declarative rule, a request hook and
a response hook.

- Rule 1 cancels every request to ads.example (and its subdomains) in the
  host, natively: those requests never enter Python.
- The request hook cancels paths under /private/, and adds an
  `x-python-extension` header carrying how many requests this instance has
  seen.
- The response hook rewrites `x-origin-version` (the origin says which HTTP
  version it was asked with) and adds `x-python-status`.
"""

from sockhost_plugin import extension as ext
from sockhost_plugin import log


class Example(ext.Extension):
    def __init__(self):
        self.seen = 0

    def rules(self):
        return [ext.block(1, hosts=["ads.example"])]

    def on_request(self, request):
        self.seen += 1
        path = request.url.split("://", 1)[-1].partition("/")[2]
        if path.startswith("private/"):
            log.info(f"cancelled {request.url}")
            return ext.cancel("private paths are not fetched")
        return ext.proceed(ext.set_header("x-python-extension", f"seen {self.seen}"))

    def on_response(self, response):
        changes = [ext.set_header("x-python-status", str(response.status))]
        version = ext.header(response.headers, "x-origin-version")
        if version is not None:
            changes.append(ext.set_header("x-origin-version", b"python saw " + version))
        return changes


AddOn = ext.export(Example)
