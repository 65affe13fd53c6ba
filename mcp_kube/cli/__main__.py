"""``python -m mcp_kube.cli``, as the ``mcp-kube`` script."""

import sys

from mcp_kube.cli import main

sys.exit(main())
