#!/usr/bin/python3
"""Plays an HLS stream in headless Chromium with hls.js and reports what happened.

    t/browser/hls_play.py --url 'http://127.0.0.1:PORT/web/hls.html?src=/hls/test.m3u8' \
        --seconds 15 --screenshot target/hls-browser.png

The page (t/web/hls.html) records its state in window.hlsState. This script waits for playback to
start (--start-timeout, default 20 s), samples video.currentTime for --seconds, saves a screenshot,
then prints one JSON line on stdout:

    {"started", "start_time", "end_time", "advanced_s", "width", "height", "fatal_errors",
     "nonfatal_error_count", "stalls", ...}

stalls counts the samples (every 0.5 s) in which currentTime did not move after playback started.
Exit status 0 when the browser ran (whatever the playback did: the caller judges), 2 when the
browser could not be started or driven. Uses Debian's chromium, chromium-driver and python3-selenium
(hence /usr/bin/python3, not whatever python3 is first in PATH). Every wait is bounded, and the
whole run is killed after --seconds + 75 s at most; chromium is always shut down.
"""
import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time

CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'


class Timeout(Exception):
    pass


def descendants(root):
    """Pids of all descendants of root, read from /proc."""
    children = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(')') + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def kill_descendants():
    for pid in descendants(os.getpid()):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def emit(result):
    sys.stdout.write(json.dumps(result, sort_keys=True) + '\n')
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--url', required=True, help='the page, with ?src=PLAYLIST')
    ap.add_argument('--seconds', type=float, default=15, help='how long to watch playback')
    ap.add_argument('--start-timeout', type=float, default=20, help='max wait for playback to start')
    ap.add_argument('--screenshot', help='PNG file to write at the end')
    ap.add_argument('--window', default='1024,768', help='window size W,H')
    args = ap.parse_args()

    deadline_total = int(args.seconds + args.start_timeout + 55)

    def on_alarm(signum, frame):
        raise Timeout('hls_play.py: hard time limit of %d s reached' % deadline_total)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_alarm)
    signal.alarm(deadline_total)

    result = {'url': args.url, 'started': False, 'start_time': None, 'end_time': None,
              'advanced_s': 0, 'width': 0, 'height': 0, 'fatal_errors': [],
              'nonfatal_error_count': 0, 'stalls': 0}
    profile = tempfile.mkdtemp(prefix='hls-play-chromium-')
    driver = None
    try:
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
            opts = webdriver.ChromeOptions()
            opts.binary_location = CHROMIUM
            for a in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
                      '--mute-audio', '--autoplay-policy=no-user-gesture-required',
                      '--window-size=' + args.window, '--user-data-dir=' + profile,
                      '--no-first-run', '--no-default-browser-check', '--disable-extensions',
                      '--disable-background-networking', '--disable-component-update',
                      '--disable-background-timer-throttling',
                      '--disable-renderer-backgrounding'):
                opts.add_argument(a)
            driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
            driver.set_page_load_timeout(20)
            driver.set_script_timeout(10)
            result['browser'] = driver.capabilities.get('browserVersion')
        except Exception as e:  # noqa: BLE001 -- anything here means no browser
            result['error'] = 'browser did not start: %s: %s' % (
                type(e).__name__, str(e).split('Stacktrace:')[0].strip()[:500])
            emit(result)
            return 2

        t0 = time.time()
        driver.get(args.url)
        result['h264_mse'] = driver.execute_script(
            "return !!(window.MediaSource && MediaSource.isTypeSupported("
            "'video/mp4; codecs=\"avc1.64001f,mp4a.40.2\"'))")

        def state():
            return driver.execute_script('return window.hlsState || null') or {}

        # Wait for playback to start: a 'playing' event and currentTime moving.
        st = {}
        first_ct = None
        while time.time() - t0 < args.start_timeout:
            st = state()
            ct = (st.get('samples') or [[0, 0]])[-1][1]
            if st.get('playing') and ct > 0:
                if first_ct is None:
                    first_ct = ct
                elif ct > first_ct:
                    result['started'] = True
                    break
            if st.get('fatal'):
                break
            time.sleep(0.25)
        result['startup_s'] = round(time.time() - t0, 2)

        samples = []
        if result['started']:
            end = time.time() + args.seconds
            while time.time() < end:
                ct = driver.execute_script("return document.getElementById('video').currentTime")
                samples.append([round(time.time() - t0, 2), ct])
                time.sleep(0.5)
            samples.append([round(time.time() - t0, 2),
                            driver.execute_script("return document.getElementById('video').currentTime")])
            result['start_time'] = samples[0][1]
            result['end_time'] = samples[-1][1]
            result['advanced_s'] = round(samples[-1][1] - samples[0][1], 3)
            result['stalls'] = sum(1 for a, b in zip(samples, samples[1:]) if b[1] <= a[1])
            result['watched_s'] = round(samples[-1][0] - samples[0][0], 2)

        st = state()
        result['width'] = st.get('width') or 0
        result['height'] = st.get('height') or 0
        result['fatal_errors'] = st.get('fatal') or []
        errors = st.get('errors') or []
        result['nonfatal_error_count'] = len(errors)
        result['nonfatal_errors'] = errors[-5:]
        for k in ('engine', 'hlsVersion', 'levels', 'fragsLoaded', 'waiting', 'playError'):
            result[k] = st.get(k)
        result['samples'] = [s for i, s in enumerate(samples) if i % 4 == 0 or i == len(samples) - 1]

        if args.screenshot:
            d = os.path.dirname(os.path.abspath(args.screenshot))
            os.makedirs(d, exist_ok=True)
            result['screenshot'] = args.screenshot if driver.save_screenshot(args.screenshot) else None
        emit(result)
        return 0
    except Exception as e:  # noqa: BLE001 -- report, the caller judges
        result['error'] = '%s: %s' % (type(e).__name__, str(e).strip()[:500])
        emit(result)
        return 0 if driver is not None else 2
    finally:
        signal.alarm(15)  # bound the shutdown too
        try:
            if driver is not None:
                driver.quit()
        except BaseException:  # noqa: BLE001
            pass
        signal.alarm(0)
        kill_descendants()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
