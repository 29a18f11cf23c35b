"""Errors a user can cause or meet, each carrying one clear sentence with the fix.

The CLI and the pytest plugin print ``str(error)`` without a traceback for every
:class:`HarnessError`; anything else is a bug in lvs-harness and keeps its traceback.
"""


class HarnessError(Exception):
    """A problem the user can fix: the message names it and says how."""


class VagrantfileError(HarnessError):
    """A Vagrantfile that cannot be turned into a topology."""


class LabError(HarnessError):
    """A lab that could not be built, booted or driven."""


class LabGone(LabError):
    """The lab stopped under the harness (its guest powered off or crashed): nothing more can run in it."""


class Refused(LabError):
    """A lab the harness will not start as asked (e.g. a submission's scripts on this machine's kernel)."""


class SubmissionFault(LabError):
    """A lab the submission's own code broke or held up (a provisioner that never ends): the
    student's outcome, graded once, never retried as the machine's fault."""


class CommandFailed(HarnessError):
    """A command run through :meth:`Host.check` exited non-zero.

    Example::

        try:
            host.check("ipvsadm -Ln")
        except CommandFailed as err:
            print(err.result.stderr)
    """

    def __init__(self, host: str, result):
        self.host = host
        self.result = result
        out = (result.stderr or result.stdout).strip()
        super().__init__(
            f"`{result.command}` on {host} exited {result.rc}" + (f": {out[-2000:]}" if out else " with no output")
        )


class CommandTimeout(LabError):
    """A command on a lab host ran past its timeout and was killed: the lab or the machine is too
    slow or stuck — a harness-side fault, never a verdict on the lab's behaviour."""

    def __init__(self, host: str, result, timeout: float):
        self.host, self.result, self.timeout = host, result, timeout
        super().__init__(
            f"`{result.command}` on {host} did not finish within {timeout:g} s and was stopped "
            "(a loaded machine or a stuck lab; grade again, or give the command more time)"
        )
