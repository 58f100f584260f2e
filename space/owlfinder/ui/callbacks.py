"""Gradio glue shared by the tabs: every failure of a callback reaches the page as one line.

An :class:`owlfinder.errors.OwlFinderError` (a bad file, a refused label, a setting) is shown as its
``public_message``; anything else is a bug: it is logged with its traceback and shown as "Something went
wrong (Type: message)", without server paths.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable

import gradio as gr

from owlfinder.errors import OwlFinderError, public_message

__all__ = ["gr_error", "user_errors"]

log = logging.getLogger(__name__)


def gr_error(err: Exception, where: str = "callback") -> gr.Error:
    """The one-line :class:`gradio.Error` for ``err`` (logged with its traceback unless it is one of ours)."""
    if isinstance(err, OwlFinderError):
        return gr.Error(err.public_message, print_exception=False)
    log.exception("%s failed", where)
    return gr.Error(f"Something went wrong ({public_message(err)})", print_exception=False)


def user_errors(fn: Callable) -> Callable:
    """Wrap a callback so that every failure reaches the page as a one-line :class:`gradio.Error`."""
    where = f"callback {fn.__name__}"

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as err:
                raise gr_error(err, where) from None
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:
            raise gr_error(err, where) from None
    return wrapper
