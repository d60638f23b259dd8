"""Framework callbacks. Each submodule imports its framework only when used.

- :func:`joulecast.integrations.keras.callback` -> ``keras.callbacks.Callback``
- :func:`joulecast.integrations.lightning.callback` -> ``lightning.pytorch.Callback``
- :func:`joulecast.integrations.huggingface.callback` -> ``transformers.TrainerCallback``
"""
