"""Write sockhost plugins in Python.

The counterpart of the Rust SDK (``sdk/``): subclass one base class for your
plugin's kind and export it with one call; componentize-py's generated
bindings (``wit_world``) stay hidden in the common case.

=====================  ===============================  =========================================
kind (WIT world)       base class                       export (in the app module)
=====================  ===============================  =========================================
``extension``          ``sockhost_plugin.extension.Extension``  ``AddOn = extension.export(MyExtension)``
``telemetry-probe``    ``sockhost_plugin.probe.Probe``          ``Telemetry = probe.export(MyProbe)``
=====================  ===============================  =========================================

The modules import ``wit_world``, which componentize-py generates from
``wit/0.1.0`` when it builds the component (``plugins/build-python.sh``).
Import only the module of your plugin's world: the other world's bindings
do not exist in your component.
"""
