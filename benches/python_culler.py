"""One pass of the Python culler, jupyterhub-idle-culler 2.0.0, for
benches/culling.rs: it has no --once, so this calls its cull_idle() once,
as its own scheduler would on each tick.

    python python_culler.py URL TIMEOUT CONCURRENCY PAGE_SIZE

The token comes from JUPYTERHUB_API_TOKEN, as for the culler itself.
"""

import asyncio
import logging
import os
import sys

from jupyterhub_idle_culler import cull_idle


def main() -> None:
    url, timeout, concurrency, page_size = sys.argv[1:5]
    logging.basicConfig(level=logging.INFO)
    asyncio.run(
        cull_idle(
            url=url,
            api_token=os.environ["JUPYTERHUB_API_TOKEN"],
            inactive_limit=int(timeout),
            logger=logging.getLogger("jupyterhub-idle-culler"),
            concurrency=int(concurrency),
            api_page_size=int(page_size),
        )
    )


if __name__ == "__main__":
    main()
