# HLS in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven by
# python3-selenium through t/browser/hls_play.py) plays the module's live HLS with hls.js (the pinned
# version scripts/setup puts in target/web/) for 15 s from t/web/hls.html, served by nginx.
# FFmpeg publishes target/media/bench.flv (1280x720 H.264 + AAC, copied, looped) over RTMP.
use lib 't/lib';
use Test::Nginx::Rtmp;

my @missing = grep { !-x $_ } qw(/usr/bin/chromium /usr/bin/chromedriver /usr/bin/python3);
push @missing, 'python3-selenium'
    if -x '/usr/bin/python3' && system('/usr/bin/python3 -c "import selenium" 2>/dev/null') != 0;
if (@missing) {
    Test::More::plan(skip_all => "no @missing (run scripts/setup)");
}

run_tests();

__DATA__

=== TEST 1: hls.js in headless Chromium plays the module's live HLS for 15 s
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/html/hls;
        hls_fragment 2s;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /hls/ {
        alias $TEST_NGINX_PREFIX/html/hls/;
        add_header Cache-Control no-cache;
        types {
            application/vnd.apple.mpegurl m3u8;
            video/mp2t ts;
        }
    }
    # t/web/hls.html and hls.min.js, copied into html/web/ by browser_play_hls().
    location /web/ {
        root html;
    }
}
--- timeout: 150
--- run
my $dir = "$TEST_NGINX_PREFIX/html/hls";
my $shot = 'target/hls-browser.png';
unlink Test::Nginx::Rtmp::repo_root() . "/$shot";
my $writer = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test", file => media('bench.flv'),
                     loop => 1, timeout => 120);

# Three segments in the playlist: hls.js starts a live stream three target durations from its end.
my $segs = wait_until(sub {
    my @ts = Test::Nginx::Rtmp::slurp("$dir/test.m3u8") =~ /^[^#\s].*\.ts$/mg;
    return @ts >= 3 ? scalar @ts : 0;
}, 20, 0.2);
ok($segs, 'the module made a playlist with 3 segments')
    or diag(publisher_log($writer));

my $h = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$TEST_NGINX_HTTP_PORT", Timeout => 5);
print $h "GET /hls/test.m3u8 HTTP/1.0\r\nHost: x\r\n\r\n" if $h;
my $resp = $h ? read_until($h, qr/\r\n\r\n.*#EXTM3U/s, 5) // '' : '';
like($resp, qr{^HTTP/1\.1 200.*Content-Type: application/vnd\.apple\.mpegurl}is,
     'nginx serves the playlist');

my $r = browser_play_hls(
    "http://127.0.0.1:$TEST_NGINX_HTTP_PORT/web/hls.html?src=/hls/test.m3u8",
    seconds => 15, screenshot => $shot);
ok($r, 'the browser ran') or return 1;
note(explain($r));
ok($r->{started}, 'playback started');
cmp_ok($r->{advanced_s}, '>=', 10, 'playback advanced at least 10 s in 15 s');
is($r->{width}, 1280, 'video width');
is($r->{height}, 720, 'video height');
is(scalar @{ $r->{fatal_errors} || [] }, 0, 'no fatal hls.js error')
    or diag(explain($r->{fatal_errors}));
ok(-s Test::Nginx::Rtmp::repo_root() . "/$shot", "screenshot $shot written");
ok(defined wait_publisher($writer, 0) ? 0 : 1, 'the publisher was still running')
    or diag(publisher_log($writer));
