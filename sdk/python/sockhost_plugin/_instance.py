"""One plugin object per component instance.

componentize-py may create the exported class more than once; the plugin's
state must not depend on that. Each sockhost instance is a store of its own
(its own Python interpreter), so a module-level object is exactly one per
instance, as the Rust SDK's ``instance::with`` keeps one per instance.
"""

_registered = None
_object = None


def register(cls) -> None:
    global _registered, _object
    if _registered is not None and _registered is not cls:
        raise RuntimeError(
            f"sockhost_plugin: export() called twice ({_registered.__name__} and {cls.__name__}); "
            "a component exports one plugin"
        )
    if _registered is None:
        _registered = cls
        _object = None


def get():
    global _object
    if _object is None:
        if _registered is None:
            raise RuntimeError("sockhost_plugin: no plugin exported (call export(YourClass) in the app module)")
        _object = _registered()
    return _object
