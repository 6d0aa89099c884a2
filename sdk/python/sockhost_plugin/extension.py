"""Extensions (``extension`` world): add-ons acting on requests.

Two tiers, as in the Rust SDK. **Rules** (``Extension.rules``,
``replace_rules``) go to the host, which compiles and evaluates them
natively: a request that only rules concern never enters Python. **Hooks**
(``on_request``, ``on_response``) handle what rules cannot say; the host
calls them only for requests matching the filters the extension registers
*and* the hosts its manifest grants.

::

    from sockhost_plugin import extension as ext

    class NoAds(ext.Extension):
        def rules(self):
            return [ext.block(1, hosts=["ads.example"])]

        def on_request(self, request):
            return ext.proceed(ext.set_header("x-seen-by", "no-ads"))

    AddOn = ext.export(NoAds)   # the name componentize-py looks for

The host may run several instances of an extension at once, each with its
own Python interpreter and so its own ``Extension`` object: state kept in
one is not seen by another. Rules are shared by every instance.
"""

from typing import Iterable, List, Optional, Sequence, Union

from componentize_py_types import Err
from wit_world import exports as _exports
from wit_world.exports import add_on as _wit
from wit_world.imports import rule_types as _rt
from wit_world.imports import rules as _host_rules
from wit_world.imports import types as _types

from . import _instance

# The WIT types, under the names the Rust SDK uses.
Header = _types.Header
ResourceType = _rt.ResourceType
Rule = _rt.Rule
RuleCondition = _rt.RuleCondition
HeaderChange = _rt.HeaderChange
RuleAction = _rt.RuleAction
Registration = _wit.Registration
RequestFilter = _wit.RequestFilter
Request = _wit.Request
Response = _wit.Response
RequestVerdict = _wit.RequestVerdict

HeaderValue = Union[str, bytes]


class Extension:
    """Subclass it and override what you need; every method has a default.

    ``init`` registers ``rules()``, ``request_filter()`` and
    ``response_filter()``. A filter's default is: every request (or
    response) the manifest lets the extension see when the subclass
    overrides the matching hook, otherwise none, so a hook you did not
    write is never called.
    """

    def rules(self) -> List[Rule]:
        """The initial declarative rules. Default: none."""
        return []

    def request_filter(self) -> Optional[RequestFilter]:
        """Which requests ``on_request`` sees; ``None``: it is not called."""
        return request_filter() if _overrides(self, "on_request") else None

    def response_filter(self) -> Optional[RequestFilter]:
        """Which responses ``on_response`` sees; ``None``: it is not called."""
        return request_filter() if _overrides(self, "on_response") else None

    def init(self) -> Registration:
        """Called once per instance before any hook. Every instance should
        return the same registration: the plugin's is the first instance's."""
        return Registration(
            rules=list(self.rules()),
            request_filter=self.request_filter(),
            response_filter=self.response_filter(),
        )

    def on_request(self, request: Request) -> RequestVerdict:
        """A request matching the request filter. Default: go on unchanged."""
        return proceed()

    def on_response(self, response: Response) -> List[HeaderChange]:
        """A response head matching the response filter: header changes to
        apply. Default: none."""
        return []


def _overrides(obj: Extension, name: str) -> bool:
    return getattr(type(obj), name) is not getattr(Extension, name)


class _AddOn(_exports.AddOn):
    """The world's export: hands every call to the one registered object."""

    def init(self) -> Registration:
        return _instance.get().init()

    def on_request(self, request: Request) -> RequestVerdict:
        return _instance.get().on_request(request)

    def on_response(self, response: Response) -> List[HeaderChange]:
        return list(_instance.get().on_response(response))


def export(cls: type) -> type:
    """Exports ``cls`` (an ``Extension`` subclass) as the component's
    implementation. Assign the result to ``AddOn`` in the app module::

        AddOn = export(MyExtension)
    """
    if not (isinstance(cls, type) and issubclass(cls, Extension)):
        raise TypeError(f"export() takes an Extension subclass, not {cls!r}")
    _instance.register(cls)
    return _AddOn


# --- building blocks ------------------------------------------------------


def request_filter(
    hosts: Iterable[str] = (),
    methods: Iterable[str] = (),
    resource_types: Iterable[ResourceType] = (),
) -> RequestFilter:
    """A hook filter; empty lists match everything the manifest grants."""
    return RequestFilter(
        host_suffixes=[h.lower() for h in hosts],
        methods=[m.upper() for m in methods],
        resource_types=list(resource_types),
    )


def condition(
    hosts: Iterable[str] = (),
    except_hosts: Iterable[str] = (),
    url: Optional[str] = None,
    methods: Iterable[str] = (),
    resource_types: Iterable[ResourceType] = (),
) -> RuleCondition:
    """When a rule applies: a host or its subdomains, not the excluded ones,
    a URL pattern (``*``, ``|``, ``||``, ``^`` as in the WIT), methods and
    resource types. Every part given must match."""
    return RuleCondition(
        host_suffixes=[h.lower() for h in hosts],
        excluded_host_suffixes=[h.lower() for h in except_hosts],
        url_pattern=url,
        methods=[m.upper() for m in methods],
        resource_types=list(resource_types),
    )


def rule(id: int, action: RuleAction, priority: int = 0, **when) -> Rule:
    """A rule with ``action``; ``when`` holds ``condition``'s arguments."""
    return Rule(id=id, priority=priority, condition=condition(**when), action=action)


def block(id: int, priority: int = 0, **when) -> Rule:
    """A rule cancelling matching requests."""
    return rule(id, _rt.RuleAction_Block(), priority, **when)


def allow(id: int, priority: int = 0, **when) -> Rule:
    """A rule letting matching requests through past lower-priority blocks
    and redirects."""
    return rule(id, _rt.RuleAction_Allow(), priority, **when)


def redirect_rule(id: int, to: str, priority: int = 0, **when) -> Rule:
    """A rule redirecting matching requests to the absolute URL ``to``."""
    return rule(id, _rt.RuleAction_Redirect(to), priority, **when)


def request_headers_rule(id: int, changes: Sequence[HeaderChange], priority: int = 0, **when) -> Rule:
    """A rule changing the request headers of matching requests."""
    return rule(id, _rt.RuleAction_ModifyRequestHeaders(list(changes)), priority, **when)


def response_headers_rule(id: int, changes: Sequence[HeaderChange], priority: int = 0, **when) -> Rule:
    """A rule changing the response headers of matching requests."""
    return rule(id, _rt.RuleAction_ModifyResponseHeaders(list(changes)), priority, **when)


def set_header(name: str, value: HeaderValue) -> HeaderChange:
    """Sets a header, replacing its values. ``value``: bytes, or a str
    encoded as UTF-8."""
    raw = value.encode() if isinstance(value, str) else bytes(value)
    return _rt.HeaderChange_Set(Header(name=name.lower(), value=raw))


def remove_header(name: str) -> HeaderChange:
    """Removes every value of a header."""
    return _rt.HeaderChange_Remove(name.lower())


def proceed(*changes: HeaderChange) -> RequestVerdict:
    """Go on, after these header changes (none: unchanged)."""
    return _wit.RequestVerdict_Proceed(list(changes))


def cancel(reason: str) -> RequestVerdict:
    """Cancel the request; ``reason`` is given to the client."""
    return _wit.RequestVerdict_Cancel(reason)


def redirect(url: str) -> RequestVerdict:
    """Redirect to this absolute URL (the manifest must grant its host)."""
    return _wit.RequestVerdict_Redirect(url)


def header(headers: Sequence[Header], name: str) -> Optional[bytes]:
    """The first value of header ``name`` (any case), or ``None``."""
    name = name.lower()
    for h in headers:
        if h.name == name:
            return h.value
    return None


def replace_rules(rules: Sequence[Rule]) -> None:
    """Replaces every rule of this extension, for every instance. Raises
    ``ValueError`` with the host's reason when a rule is refused (nothing
    changes then)."""
    try:
        _host_rules.replace(list(rules))
    except Err as e:
        raise ValueError(e.value) from None
