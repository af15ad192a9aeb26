#!/usr/bin/python3
"""Plays a live HTTP-FLV or WebSocket-FLV stream in headless Chromium with mpegts.js and reports
playback and latency.

    t/browser/flv_play.py --url 'http://127.0.0.1:PORT/web/flv.html?src=ws://127.0.0.1:PORT/flv/live/test.flv' \
        --seconds 12 --screenshot target/flv-browser.png

The page (t/web/flv.html) records its state in window.flvState. As t/browser/hls_play.py (with
which it shares t/browser/common.py), it waits for playback to start, samples video.currentTime for
--seconds, saves a screenshot and prints one JSON line on stdout:

    {"started", "startup_s", "advanced_s", "watched_s", "stalls", "width", "height",
     "fatal_errors", "ended", "media_info", "latency": {...}, ...}

latency, over the watched window (page samples every 0.25 s):
  buffer_*: end of the buffered range being played minus currentTime, what mpegts.js's latency
            chasing acts on (median, max, last);
  wall_*:   the live edge extrapolated at 1x from the earliest-arriving data (the largest
            buffered end minus page time seen) minus currentTime: it also counts data that
            arrived late or in bursts (median, max, last).
Exit status 0 when the browser ran (the caller judges), 2 when it could not be started.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import current_time, parse_args, run, thin, wait_start, watch  # noqa: E402


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if not n:
        return None
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def latency(samples, since_ms):
    """Latency figures from the page's [ms, currentTime, bufferedEnd] samples."""
    fed = [s for s in samples if s[2] is not None]
    watched = [s for s in fed if s[0] >= since_ms]
    if not watched:
        return None
    edge = max(s[2] - s[0] / 1000.0 for s in fed)
    buf = [s[2] - s[1] for s in watched]
    wall = [edge + s[0] / 1000.0 - s[1] for s in watched]
    r3 = lambda x: round(x, 3)  # noqa: E731
    return {'samples': len(watched),
            'buffer_median_s': r3(median(buf)), 'buffer_max_s': r3(max(buf)), 'buffer_last_s': r3(buf[-1]),
            'wall_median_s': r3(median(wall)), 'wall_max_s': r3(max(wall)), 'wall_last_s': r3(wall[-1])}


def main():
    args = parse_args(__doc__, 'the page, with ?src=STREAM_URL', 12)
    result = {'url': args.url, 'started': False, 'advanced_s': 0, 'stalls': 0, 'width': 0,
              'height': 0, 'fatal_errors': [], 'ended': None, 'latency': None}

    def play(driver):
        t0 = time.time()
        driver.get(args.url)

        def state():
            return driver.execute_script('return window.flvState || null') or {}

        def probe():
            st = state()
            if st.get('fatal') or st.get('ended'):
                return False, 0, True
            return st.get('playing'), current_time(driver), False

        wait_start(t0, args.start_timeout, result, probe)

        samples = []
        watch_from_ms = None
        if result['started']:
            watch_from_ms = driver.execute_script('return performance.now()')
            samples = watch(driver, t0, args.seconds, result)

        st = state()
        result['width'] = st.get('width') or 0
        result['height'] = st.get('height') or 0
        result['fatal_errors'] = st.get('fatal') or []
        result['ended'] = st.get('ended')
        result['media_info'] = st.get('mediaInfo')
        for k in ('mpegtsVersion', 'waiting', 'seeks', 'quality', 'playError', 'playingAt'):
            result[k] = st.get(k)
        stats = st.get('stats') or {}
        result['stats'] = {k: stats.get(k) for k in ('loaderType', 'speed', 'decodedFrames',
                                                     'droppedFrames', 'url')}
        if watch_from_ms is not None:
            result['latency'] = latency(st.get('samples') or [], watch_from_ms)
        result['samples'] = thin(samples)

    return run('flv_play', args, result, play)


if __name__ == '__main__':
    sys.exit(main())
