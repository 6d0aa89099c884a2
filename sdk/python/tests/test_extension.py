"""sockhost_plugin.extension, natively against componentize-py's generated
bindings of the extension world (sdk/python/test.sh generates them)."""

import unittest

from sockhost_plugin import _instance
from sockhost_plugin import extension as ext
from wit_world.exports import add_on
from wit_world.imports import rule_types


def request(url="https://www.test/"):
    return ext.Request(id=1, url=url, method="GET", headers=[], resource_type=ext.ResourceType.OTHER)


class Defaults(ext.Extension):
    pass


class Hooks(ext.Extension):
    def __init__(self):
        self.calls = 0

    def rules(self):
        return [ext.block(7, hosts=["Ads.Example"], methods=["get"], priority=3)]

    def on_request(self, request):
        self.calls += 1
        return ext.proceed(ext.set_header("X-Calls", str(self.calls)))


class ExtensionTest(unittest.TestCase):
    def tearDown(self):
        _instance._registered = None
        _instance._object = None

    def test_defaults_register_nothing_and_change_nothing(self):
        export = ext.export(Defaults)()
        reg = export.init()
        self.assertEqual(reg, add_on.Registration(rules=[], request_filter=None, response_filter=None))
        self.assertEqual(export.on_request(request()), add_on.RequestVerdict_Proceed([]))
        self.assertEqual(export.on_response(ext.Response(request_id=1, url="u", status=200, headers=[])), [])

    def test_an_overridden_hook_gets_a_filter_and_state_lives_across_export_objects(self):
        ext.export(Hooks)
        reg = ext.export(Hooks)().init()
        self.assertEqual(reg.request_filter, ext.RequestFilter(host_suffixes=[], methods=[], resource_types=[]))
        self.assertIsNone(reg.response_filter)
        rule = reg.rules[0]
        self.assertEqual((rule.id, rule.priority), (7, 3))
        self.assertEqual(rule.condition.host_suffixes, ["ads.example"])
        self.assertEqual(rule.condition.methods, ["GET"])
        self.assertIsInstance(rule.action, rule_types.RuleAction_Block)
        # componentize-py may create the export class more than once: one
        # plugin object per instance all the same.
        ext.export(Hooks)().on_request(request())
        verdict = ext.export(Hooks)().on_request(request())
        self.assertEqual(verdict, add_on.RequestVerdict_Proceed([ext.set_header("x-calls", "2")]))

    def test_building_blocks(self):
        self.assertEqual(ext.set_header("X-A", "é").value, ext.Header(name="x-a", value="é".encode()))
        self.assertEqual(ext.set_header("x-b", b"\xff").value.value, b"\xff")
        self.assertEqual(ext.remove_header("X-A"), rule_types.HeaderChange_Remove("x-a"))
        self.assertEqual(ext.cancel("no"), add_on.RequestVerdict_Cancel("no"))
        self.assertEqual(ext.redirect("https://x/"), add_on.RequestVerdict_Redirect("https://x/"))
        headers = [ext.Header(name="a", value=b"1"), ext.Header(name="a", value=b"2")]
        self.assertEqual(ext.header(headers, "A"), b"1")
        self.assertIsNone(ext.header(headers, "b"))
        r = ext.redirect_rule(2, "https://cdn.example/", url="||ads.example^")
        self.assertEqual(r.action, rule_types.RuleAction_Redirect("https://cdn.example/"))
        self.assertEqual(r.condition.url_pattern, "||ads.example^")
        r = ext.response_headers_rule(3, [ext.remove_header("server")], except_hosts=["A.test"])
        self.assertEqual(r.condition.excluded_host_suffixes, ["a.test"])
        self.assertEqual(r.action, rule_types.RuleAction_ModifyResponseHeaders([ext.remove_header("server")]))

    def test_export_refuses_what_is_not_an_extension_and_a_second_plugin(self):
        with self.assertRaises(TypeError):
            ext.export(object)
        ext.export(Defaults)
        with self.assertRaises(RuntimeError):
            ext.export(Hooks)


if __name__ == "__main__":
    unittest.main()
