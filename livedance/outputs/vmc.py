"""VMC protocol output: drive a humanoid avatar (VSeeFace, VirtualMotionCapture
receivers, EVMC4U in Unity, TouchDesigner/Blender VMC add-ons) with no glue.

The VMC protocol (https://protocol.vmc.info) is OSC over UDP with Unity's
conventions. Per frame and avatar, livedance sends, as a "performer":

    /VMC/Ext/Root/Pos  s "root", f px py pz, f qx qy qz qw   avatar origin, on the floor
    /VMC/Ext/Bone/Pos  s <HumanBodyBones name>, f px py pz, f qx qy qz qw
                       (one per bone in BONE_MAP: local position and rotation)
    /VMC/Ext/OK        i loaded=1, i calibration state=3 (calibrated),
                       i calibration mode=0 (normal), i tracking status=1 (ok)
    /VMC/Ext/T         f time, seconds

Conventions, and why:
* Unity is left-handed, y up, metres. VMC receivers write the numbers
  straight into ``Transform.localPosition/localRotation``, so they must be in
  that frame. livedance is right-handed (SMPL), so x is mirrored: positions
  ``(-x, y, z)``, quaternions ``(x, -y, -z, w)`` (see ``coords.py``). Mirroring
  x rather than z keeps the dancer facing +z, which is where a Unity humanoid
  faces, so the dance is not turned around. osc.up_axis/units do not apply.
* Rotations are *local* (relative to the parent bone), relative to a T-pose
  with every bone frame aligned to the world: exactly what a normalized
  humanoid (any VRM, or an avatar passed through UniVRM's normalization)
  holds at rest. SMPL's rest pose is such a T-pose, with the caveat that its
  arms hang about 3-5 degrees below horizontal and slightly back, so a
  receiver's T-pose matches it to within those few degrees.
* The Root sits on the floor under the pelvis (no rotation); the Hips carry
  the height and the whole-body orientation. Other bones' local positions are
  SMPL's rest offsets; receivers that copy bone positions will take on SMPL's
  proportions (turn bone-position sync off in the receiver to keep the
  avatar's own).
* SMPL's ``left_hand``/``right_hand`` joints drive fingers, which a humanoid
  models as separate finger bones; they are not sent. Avatars without an
  UpperChest simply ignore that message (the spine3 bend is then lost).
* Bundles use the timetag "immediately": VMC receivers apply poses on
  arrival, and the engine has already compensated output latency by sampling
  the dance ahead of the clock.
* One avatar per UDP port, as VMC has no avatar id: dancer k goes to
  ``port + k`` for the first ``osc.vmc_dancers`` dancers.
"""

from __future__ import annotations

import numpy as np

from livedance.config import OscSettings
from livedance.frames import Frame
from livedance.outputs.coords import Axes
from livedance.outputs.osc_packing import FLOAT, IMMEDIATE, FrameTemplate, MessageSpec
from livedance.outputs.udp import SendStats, UdpSender, parse_host_port
from livedance.skeleton import JOINT_INDEX, REST_OFFSETS

#: SMPL joint -> Unity ``HumanBodyBones`` name, in SMPL order.
BONE_MAP: dict[str, str] = {
    "pelvis": "Hips",
    "left_hip": "LeftUpperLeg",
    "right_hip": "RightUpperLeg",
    "spine1": "Spine",
    "left_knee": "LeftLowerLeg",
    "right_knee": "RightLowerLeg",
    "spine2": "Chest",
    "left_ankle": "LeftFoot",
    "right_ankle": "RightFoot",
    "spine3": "UpperChest",
    "left_foot": "LeftToes",
    "right_foot": "RightToes",
    "neck": "Neck",
    "left_collar": "LeftShoulder",
    "right_collar": "RightShoulder",
    "head": "Head",
    "left_shoulder": "LeftUpperArm",
    "right_shoulder": "RightUpperArm",
    "left_elbow": "LeftLowerArm",
    "right_elbow": "RightLowerArm",
    "left_wrist": "LeftHand",
    "right_wrist": "RightHand",
}
BONE_JOINTS: np.ndarray = np.array([JOINT_INDEX[j] for j in BONE_MAP], dtype=np.intp)
UNITY = Axes.from_names("y", "m", left_handed=True)

ROOT_ADDRESS = "/VMC/Ext/Root/Pos"
BONE_ADDRESS = "/VMC/Ext/Bone/Pos"
OK_ADDRESS = "/VMC/Ext/OK"
TIME_ADDRESS = "/VMC/Ext/T"
OK_ARGS = (1, 3, 0, 1)  # loaded, calibrated, normal calibration mode, tracking ok

#: Floats per avatar and frame: root pos + quat, hips pos + quat, then one
#: quaternion per other bone (their positions are constant rest offsets), time.
FLOATS_PER_AVATAR = 7 + 7 + 4 * (len(BONE_MAP) - 1) + 1


def vmc_messages() -> list[MessageSpec]:
    """One avatar's per-frame messages, in wire order."""
    rest = UNITY.positions(REST_OFFSETS)
    messages = [MessageSpec(ROOT_ADDRESS, ("root",) + (FLOAT,) * 7)]
    for joint, bone in BONE_MAP.items():
        if joint == "pelvis":
            messages.append(MessageSpec(BONE_ADDRESS, (bone,) + (FLOAT,) * 7))
        else:
            position = tuple(float(v) for v in rest[JOINT_INDEX[joint]])
            messages.append(MessageSpec(BONE_ADDRESS, (bone,) + position + (FLOAT,) * 4))
    messages.append(MessageSpec(OK_ADDRESS, OK_ARGS))
    messages.append(MessageSpec(TIME_ADDRESS, (FLOAT,)))
    return messages


def vmc_values(frame: Frame) -> np.ndarray:
    """(D, FLOATS_PER_AVATAR) numbers of every dancer, in template order."""
    d = frame.dancers
    out = np.zeros((d, FLOATS_PER_AVATAR), dtype=np.float32)
    trans = UNITY.positions(frame.trans)  # (D, 3)
    quats = UNITY.quaternions_xyzw(frame.quaternions[:, BONE_JOINTS])  # (D, B, 4)
    out[:, 0] = trans[:, 0]  # root: on the floor under the pelvis, unrotated
    out[:, 2] = trans[:, 2]
    out[:, 6] = 1.0
    out[:, 8] = trans[:, 1]  # hips: the height above the root
    out[:, 10:14] = quats[:, 0]
    out[:, 14:-1] = quats[:, 1:].reshape(d, -1)
    out[:, -1] = frame.time
    return out


class VmcSender:
    """The VMC sink: ``send(frame)`` never blocks."""

    def __init__(self, host: str = "127.0.0.1", port: int = 39539, avatars: int = 1, max_datagram: int = 1400) -> None:
        if avatars < 1:
            raise ValueError("avatars must be at least 1")
        self._template = FrameTemplate(vmc_messages(), max_datagram)
        self._senders = [UdpSender(host, port + k, what="VMC output") for k in range(avatars)]
        self._stats = SendStats()

    @classmethod
    def from_settings(cls, settings: OscSettings, target: str | None = None) -> "VmcSender":
        """Sender to ``target`` ("host:port"), else ``settings.vmc``, else 127.0.0.1
        on the default VMC port."""
        text = target or settings.vmc
        host, port = (
            parse_host_port(text, settings.default_vmc_port, "--vmc") if text else ("127.0.0.1", settings.default_vmc_port)
        )
        return cls(host, port, avatars=settings.vmc_dancers, max_datagram=settings.max_datagram)

    @property
    def stats(self) -> SendStats:
        """Totals over all avatars' sockets."""
        total = self._stats
        total.packets = sum(s.stats.packets for s in self._senders)
        total.bytes = sum(s.stats.bytes for s in self._senders)
        total.dropped = sum(s.stats.dropped for s in self._senders)
        return total

    def encode(self, frame: Frame) -> list[list[bytes]]:
        """Datagrams per avatar (copies: the template buffer is reused per avatar)."""
        values = vmc_values(frame)
        return [
            [bytes(v) for v in self._template.pack(values[k], timetag=IMMEDIATE)]
            for k in range(min(len(self._senders), frame.dancers))
        ]

    def send(self, frame: Frame) -> None:
        values = vmc_values(frame)
        for k in range(min(len(self._senders), frame.dancers)):
            self._senders[k].send(self._template.pack(values[k], timetag=IMMEDIATE))
        self._stats.frames += 1

    def close(self) -> None:
        for sender in self._senders:
            sender.close()
