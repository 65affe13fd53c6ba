"""The policy that decides every call, and the gate that asks it before acting."""
