"""Re-identification: pseudonyms back to warehouse person ids, with a custodian quorum only.

The archive identity is rebuilt in memory from k decrypted shares (`archive.keys`), opens the
vault, and is dropped. Every attempt is audited with its reason; refused attempts too.
"""

from __future__ import annotations

from typing import Iterable

from ..archive.keys import KeyStoreError, recover_archive_identity
from ..archive.shares import ShareError
from ..operations import Context, StudyOperations
from ..runtime.spec import StudyPaths
from ..studies import Actor
from .pseudonyms import is_pseudonym
from .vault import VaultError, read_vault


class ReidentifyRefused(PermissionError):
    """Re-identification was refused; the message says why."""


def reidentify(context: Context, actor: Actor, slug: str, pseudonyms: Iterable[str], share_texts: Iterable[str],
               reason: str) -> dict[str, int | None]:
    """The warehouse person id of each pseudonym (None if not in the study); audited."""
    StudyOperations(context).get(slug)  # unknown studies are refused by name
    wanted = list(dict.fromkeys(pseudonyms))

    def refuse(rule: str, message: str) -> ReidentifyRefused:
        context.audit.record(actor=actor.name, action="extract.reidentify-refused", study=slug,
                             detail={"rule": rule, "reason": reason, "pseudonyms": len(wanted)})
        return ReidentifyRefused(message)

    if not actor.has("admin"):
        raise refuse("admin-only", "re-identification is done by an admin with a quorum of custodians")
    if len(reason.strip()) < 10:
        raise refuse("reason", "give the reason for re-identification (at least 10 characters): it is audited")
    malformed = [p for p in wanted if not is_pseudonym(p)]
    if not wanted or malformed:
        raise refuse("pseudonym", "not study pseudonyms (PSN + 17 characters with a valid check character): "
                     + (", ".join(malformed[:5]) or "none given"))
    try:
        identity = recover_archive_identity(context, slug, share_texts, actor=actor.name, reason=reason)
        vault = read_vault(StudyPaths(context.home, slug).vault, slug, [identity])
    except (ShareError, KeyStoreError, VaultError) as error:
        raise refuse("quorum", f"cannot open the vault of {slug}: {error}") from None
    found = vault.lookup(wanted)
    context.audit.record(actor=actor.name, action="extract.reidentified", study=slug,
                         detail={"reason": reason, "pseudonyms": wanted,
                                 "found": sum(1 for v in found.values() if v is not None)})
    return found
