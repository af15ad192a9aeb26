#!/usr/bin/python3
"""Plays a live MPEG-DASH stream in headless Chromium with dash.js and reports what happened.

    t/browser/dash_play.py --url 'http://127.0.0.1:PORT/web/dash.html?src=/dash/test.mpd' \
        --seconds 15 --screenshot target/dash-browser.png

The page (t/web/dash.html) records its state in window.dashState. This script waits for playback
to start (--start-timeout, default 20 s), samples video.currentTime for --seconds, saves a
screenshot, then prints one JSON line on stdout:

    {"started", "start_time", "end_time", "advanced_s", "width", "height", "errors", "stalls",
     "latency_s" (dash.js getCurrentLiveLatency() at the end), "latency_min_s", "latency_max_s", ...}

Exit status 0 when the browser ran (the caller judges the playback), 2 when the browser could not
be started or driven. Chromium is always shut down (t/browser/common.py).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import parse_args, run, thin, wait_start, watch  # noqa: E402


def main():
    args = parse_args(__doc__, 'the page, with ?src=MPD', 15)
    result = {'url': args.url, 'started': False, 'start_time': None, 'end_time': None,
              'advanced_s': 0, 'width': 0, 'height': 0, 'errors': [], 'stalls': 0,
              'latency_s': None}

    def play(driver):
        t0 = time.time()
        driver.get(args.url)

        def state():
            return driver.execute_script('return window.dashState || null') or {}

        def probe():
            st = state()
            return st.get('playing'), (st.get('samples') or [[0, 0]])[-1][1], st.get('fatal')

        wait_start(t0, args.start_timeout, result, probe)
        samples = watch(driver, t0, args.seconds, result) if result['started'] else []

        st = state()
        result['width'] = st.get('width') or 0
        result['height'] = st.get('height') or 0
        result['errors'] = st.get('fatal') or []
        lat = [x[1] for x in (st.get('latency') or [])]
        if lat:
            result['latency_s'] = round(lat[-1], 3)
            tail = lat[len(lat) // 2:]
            result['latency_min_s'] = round(min(tail), 3)
            result['latency_max_s'] = round(max(tail), 3)
        for k in ('version', 'fragsLoaded', 'waiting', 'playError'):
            result[k] = st.get(k)
        result['samples'] = thin(samples)

    return run('dash_play', args, result, play)


if __name__ == '__main__':
    sys.exit(main())
