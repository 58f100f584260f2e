"""Who may label: the labelling gate, checked on the server for the page and the API alike.

Detection is always public. Labelling is open until it is configured:

- ``OWL_LABELLERS`` (comma-separated): Hugging Face usernames and ``org:NAME`` entries. When set, a
  labeller must be signed in with Hugging Face (``gr.LoginButton`` on Spaces) as one of those users or as a
  member of one of those organisations. API clients prove who they are with a Hugging Face token
  (``Client(space, oauth_token=hf_token)``), which is checked with ``whoami``.
- ``OWL_LABEL_TOKEN``: a shared secret. A request that carries it (the ``X-Owl-Label-Token`` header, or the
  page's "labelling key" box) may label under any name. For scripts and for testing the gate off Spaces,
  where Hugging Face login is not available. Setting it alone also gates labelling.

Safe by default: when verdicts are pushed to the Hub (``OWL_DATASET`` names a Hub dataset and ``HF_TOKEN`` is
set), labelling must be gated; :func:`require_gate_for_hub_push` is what the Space checks before it starts.
Open labelling stays possible for a local data folder that is not pushed.

Nothing here imports gradio: :meth:`LabelGate.check` takes the request's headers and the OAuth profile or
token as plain values, so the rules are tested without a server.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from owlfinder.errors import OwlFinderError

__all__ = ["HEADER", "AccessDenied", "GateRequired", "Identity", "LabelGate", "hub_push_configured",
           "parse_labellers", "require_gate_for_hub_push"]

#: The header that carries ``OWL_LABEL_TOKEN``.
HEADER = "x-owl-label-token"
_WHOAMI_TTL_S = 600.0


class AccessDenied(OwlFinderError):
    """The caller may not label; ``str(err)`` is one line and never holds a token."""


class GateRequired(OwlFinderError, ValueError):
    """Verdicts would go to the Hub while anyone may label; ``str(err)`` is one line naming the settings."""


@dataclass(frozen=True)
class Identity:
    """Who is labelling, and how we know.

    Attributes:
        name: the labeller name stored with each verdict (the Hugging Face username when signed in).
        via: ``open`` (labelling is not gated), ``login`` (a Hugging Face session on the page), ``token``
            (a Hugging Face token sent by an API client) or ``key`` (the shared ``OWL_LABEL_TOKEN``).
        verified: whether ``name`` was proven (login or token) rather than typed in.
    """

    name: str
    via: str
    verified: bool = False


def parse_labellers(text: str | None) -> tuple[frozenset[str], frozenset[str]]:
    """``(users, orgs)`` from ``OWL_LABELLERS`` text such as ``"alice, org:owl-lab, bob"`` (lower-cased)."""
    users, orgs = set(), set()
    for item in (text or "").split(","):
        item = item.strip().lstrip("@")
        if not item:
            continue
        if item.lower().startswith("org:"):
            name = item[4:].strip()
            if name:
                orgs.add(name.lower())
        else:
            users.add(item.lower())
    return frozenset(users), frozenset(orgs)


def _org_names(orgs: Iterable[Any] | None) -> set[str]:
    out = set()
    for org in orgs or []:
        if isinstance(org, str):
            out.add(org.lower())
        elif isinstance(org, Mapping):
            for key in ("preferred_username", "name"):
                if org.get(key):
                    out.add(str(org[key]).lower())
    return out


def _default_whoami(token: str) -> dict:
    from huggingface_hub import whoami

    return whoami(token=token)


@dataclass
class LabelGate:
    """The labelling access rules.

    Args:
        users: allowed Hugging Face usernames (lower case).
        orgs: allowed organisations (lower case); their members may label.
        secret: the shared labelling key, or ``None``.
        whoami: ``token -> {"name": ..., "orgs": [{"name": ...}, ...]}``; default huggingface_hub's
            ``whoami`` (tests pass a fake; results are cached for 10 minutes by a hash of the token).
    """

    users: frozenset[str] = frozenset()
    orgs: frozenset[str] = frozenset()
    secret: str | None = None
    whoami: Callable[[str], dict] = _default_whoami
    _cache: dict[str, tuple[float, dict]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __repr__(self) -> str:  # the secret stays out of logs
        return (f"LabelGate(users={sorted(self.users)}, orgs={sorted(self.orgs)}, "
                f"secret={'set' if self.secret else 'unset'})")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None,
                 whoami: Callable[[str], dict] | None = None) -> LabelGate:
        """Read ``OWL_LABELLERS`` and ``OWL_LABEL_TOKEN`` (default: :data:`os.environ`)."""
        env = os.environ if env is None else env
        return cls.from_settings(env.get("OWL_LABELLERS"), env.get("OWL_LABEL_TOKEN"), whoami)

    @classmethod
    def from_settings(cls, labellers: str | None, secret: str | None,
                      whoami: Callable[[str], dict] | None = None) -> LabelGate:
        """The gate for ``OWL_LABELLERS`` text (see :func:`parse_labellers`) and a shared key (``None``: none)."""
        users, orgs = parse_labellers(labellers)
        return cls(users=users, orgs=orgs, secret=(secret or "").strip() or None, whoami=whoami or _default_whoami)

    @property
    def gated(self) -> bool:
        """Whether labelling needs more than a name."""
        return bool(self.users or self.orgs or self.secret)

    @property
    def wants_login(self) -> bool:
        """Whether Hugging Face login can open the gate (an allowlist is configured)."""
        return bool(self.users or self.orgs)

    def allows(self, username: str | None, orgs: Iterable[str] = ()) -> bool:
        """Whether ``username`` (or one of ``orgs``) is on the allowlist."""
        if not username:
            return False
        return username.lower() in self.users or bool(self.orgs & {o.lower() for o in orgs})

    def key_ok(self, key: str | None) -> bool:
        """Whether ``key`` is the shared labelling key (constant-time comparison)."""
        return bool(self.secret and key) and hmac.compare_digest(str(key).encode(), self.secret.encode())

    def _whoami(self, token: str) -> dict:
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.time()
        with self._lock:
            hit = self._cache.get(digest)
            if hit and now - hit[0] < _WHOAMI_TTL_S:
                return hit[1]
        try:
            info = self.whoami(token)
        except Exception:
            raise AccessDenied("that Hugging Face token could not be verified") from None
        with self._lock:
            self._cache[digest] = (now, info)
        return info

    def check(self, *, labeller: str | None = None, headers: Mapping[str, str] | None = None,
              profile: Mapping[str, Any] | None = None, oauth_token: str | None = None,
              key: str | None = None) -> Identity:
        """Decide whether a request may label, and under which name.

        Args:
            labeller: the name the caller typed or passed (used when labelling is open or via the key).
            headers: the request's HTTP headers (``X-Owl-Label-Token`` is read from them).
            profile: the signed-in user's OAuth profile (``gr.OAuthProfile``), if any.
            oauth_token: a Hugging Face token from the session or an API client, if any.
            key: the labelling key typed on the page, if any.

        Raises:
            AccessDenied: one line saying what is missing.
        """
        from owlfinder.labelling.queue import clean_labeller

        username = str(profile.get("preferred_username") or "") if profile else ""
        if not self.gated:
            return Identity(clean_labeller(username or labeller), "open", bool(username))
        header_key = None
        for k, v in (headers or {}).items():
            if k.lower() == HEADER:
                header_key = v
        if self.key_ok(header_key) or self.key_ok(key):
            return Identity(clean_labeller(username or labeller), "key", bool(username))
        if self.wants_login:
            if username:
                orgs = _org_names(profile.get("orgs") if profile else None)
                if self.allows(username, orgs):
                    return Identity(clean_labeller(username), "login", True)
                if self.orgs and oauth_token and not orgs:  # the profile may omit orgs: ask the Hub
                    info = self._whoami(oauth_token)
                    if self.allows(username, _org_names(info.get("orgs"))):
                        return Identity(clean_labeller(username), "login", True)
                raise AccessDenied(f"{username} is not on this Space's labeller list (OWL_LABELLERS)")
            if oauth_token:
                info = self._whoami(oauth_token)
                name = str(info.get("name") or "")
                if self.allows(name, _org_names(info.get("orgs"))):
                    return Identity(clean_labeller(name), "token", True)
                raise AccessDenied(f"{name or 'that token'} is not on this Space's labeller list "
                                   "(OWL_LABELLERS)")
            raise AccessDenied("labelling needs a Hugging Face sign-in (or the labelling key)")
        raise AccessDenied("labelling needs the labelling key (OWL_LABEL_TOKEN)")


def hub_push_configured(dataset: str | None, hf_token: str | None) -> bool:
    """Whether verdicts are pushed to the Hub: ``dataset`` (``OWL_DATASET``) is a Hub dataset id and a token
    (``HF_TOKEN``) is set, the rule :func:`owlfinder.labelling.queue.start_hub_sync` follows."""
    from owlfinder.data.store import is_hub_id

    repo = (dataset or "").strip()
    return bool(repo and (hf_token or "").strip() and is_hub_id(repo))


def require_gate_for_hub_push(dataset: str | None, hf_token: str | None, labellers: str | None,
                              label_token: str | None) -> None:
    """Refuse open labelling when verdicts are pushed to the Hub.

    A public Space that pushes every verdict to a shared dataset would otherwise let any visitor append
    labels to it. The Space's settings (``AppConfig``) run this check when the Label tab is on, so such a
    Space refuses to start. Open labelling stays possible for a local data folder that is not pushed.

    Args:
        dataset, hf_token: ``OWL_DATASET`` and ``HF_TOKEN``.
        labellers, label_token: ``OWL_LABELLERS`` and ``OWL_LABEL_TOKEN``.

    Raises:
        GateRequired: Hub push is configured and neither gate setting is; one line naming the settings.
    """
    if hub_push_configured(dataset, hf_token) and not LabelGate.from_settings(labellers, label_token).gated:
        raise GateRequired("OWL_DATASET and HF_TOKEN push every verdict to the Hub, so labelling must be gated: "
                           "set OWL_LABELLERS (Hugging Face usernames, org:NAME) or OWL_LABEL_TOKEN (a shared "
                           "key), or set OWL_LABEL_QUEUE=0 to turn labelling off")
