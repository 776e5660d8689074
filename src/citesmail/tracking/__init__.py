"""After the send: counted links (/c/), the pixel of consenting contacts (/o/), and which
requests were likely made by a machine. See docs/tracking.md."""
