"""hotline: a verifiable crisis-communication channel.

The library's public face is small: the envelope (seal, open), the Merkle log
and its proofs, signed notes and checkpoints, keys and the roster, and errors.
"""

from .envelope import Kind, Opened, Precedence, open_envelope, seal
from .errors import HotlineError
from .keys import KeyRing, PartyKey, StationKey
from .merkle import MerkleTree, verify_consistency, verify_inclusion
from .notes import Checkpoint, SignedCheckpoint, open_checkpoint
from .roster import Roster, open_roster

__version__ = "0.1.0"

__all__ = [
    "Checkpoint",
    "HotlineError",
    "KeyRing",
    "Kind",
    "MerkleTree",
    "Opened",
    "PartyKey",
    "Precedence",
    "Roster",
    "SignedCheckpoint",
    "StationKey",
    "__version__",
    "open_checkpoint",
    "open_envelope",
    "open_roster",
    "seal",
    "verify_consistency",
    "verify_inclusion",
]
