pytest_plugins = ["bridge.sandbox.pytest_plugin"]
