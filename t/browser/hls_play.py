#!/usr/bin/python3
"""Plays an HLS stream in headless Chromium with hls.js and reports what happened.

    t/browser/hls_play.py --url 'http://127.0.0.1:PORT/web/hls.html?src=/hls/test.m3u8' \
        --seconds 15 --screenshot target/hls-browser.png

The page (t/web/hls.html) records its state in window.hlsState. This script waits for playback to
start (--start-timeout, default 20 s), samples video.currentTime for --seconds, saves a screenshot,
then prints one JSON line on stdout:

    {"started", "start_time", "end_time", "advanced_s", "width", "height", "fatal_errors",
     "nonfatal_error_count", "stalls", "low_latency_mode", "latency_s", "wall_latency_s", ...}

stalls counts the samples (every 0.5 s) in which currentTime did not move after playback started.
latency_s are the page's samples (every 0.5 s once playing) of hls.latency, wall_latency_s of
Date.now() - hls.playingDate (the EXT-X-PROGRAM-DATE-TIME clock; empty without that tag); the page
turns hls.js's lowLatencyMode on with ?ll=1 (low_latency_mode). firstFrags names the first loads
(fragment or part, its start, hls.js's live sync position then): where playback began.
Exit status 0 when the browser ran (whatever the playback did: the caller judges), 2 when the
browser could not be started or driven. Uses Debian's chromium, chromium-driver and python3-selenium
(hence /usr/bin/python3, not whatever python3 is first in PATH). Every wait is bounded, and the
whole run is killed after --seconds + 75 s at most; chromium is always shut down (t/browser/common.py,
shared with t/browser/flv_play.py).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import parse_args, run, thin, wait_start, watch  # noqa: E402


def main():
    args = parse_args(__doc__, 'the page, with ?src=PLAYLIST', 15)
    result = {'url': args.url, 'started': False, 'start_time': None, 'end_time': None,
              'advanced_s': 0, 'width': 0, 'height': 0, 'fatal_errors': [],
              'nonfatal_error_count': 0, 'stalls': 0}

    def play(driver):
        t0 = time.time()
        driver.get(args.url)
        result['h264_mse'] = driver.execute_script(
            "return !!(window.MediaSource && MediaSource.isTypeSupported("
            "'video/mp4; codecs=\"avc1.64001f,mp4a.40.2\"'))")

        def state():
            return driver.execute_script('return window.hlsState || null') or {}

        def probe():
            st = state()
            return st.get('playing'), (st.get('samples') or [[0, 0]])[-1][1], st.get('fatal')

        wait_start(t0, args.start_timeout, result, probe)

        samples = watch(driver, t0, args.seconds, result) if result['started'] else []

        st = state()
        result['width'] = st.get('width') or 0
        result['height'] = st.get('height') or 0
        result['fatal_errors'] = st.get('fatal') or []
        errors = st.get('errors') or []
        result['nonfatal_error_count'] = len(errors)
        result['nonfatal_errors'] = errors[-5:]
        for k in ('engine', 'hlsVersion', 'levels', 'fragsLoaded', 'firstFrags', 'waiting', 'playError'):
            result[k] = st.get(k)
        result['low_latency_mode'] = bool(st.get('lowLatencyMode'))
        result['latency_s'] = [round(x, 3) for x in (st.get('latency') or [])]
        result['wall_latency_s'] = [round(x, 3) for x in (st.get('wallLatency') or [])]
        result['samples'] = thin(samples)

    return run('hls_play', args, result, play)


if __name__ == '__main__':
    sys.exit(main())
