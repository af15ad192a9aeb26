# meta on (rebuilt from the sequence headers) / copy (the publisher's) / off (none).
use lib 't/lib';
use Test::Nginx::Rtmp;
use JSON::PP ();

our $RTMP = Test::Nginx::Rtmp::repo_root() . '/target/release/rtmp';

sub meta_of {
    my ($url) = @_;
    my $out = `timeout 20 $main::RTMP probe --json --timeout 10 '$url' 2>&1`;
    my $j = eval { JSON::PP::decode_json($out) } // { error => $out };
    return $j->{metadata};
}

# The metadata a player joining now gets, once it has every one of @keys: the server learns a
# stream's parameters from its first messages, which follow the publish by a moment. Polls (a new
# player each time) for at most 10 s; returns the last metadata seen.
sub meta_with {
    my ($url, @keys) = @_;
    my $m;
    wait_until(sub { $m = meta_of($url); $m && !grep { !defined $m->{$_} } @keys }, 10, 0.2);
    return $m;
}

run_tests();

__DATA__

=== TEST 1: meta on, copy and off
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application on { live on; meta on; }
    application copy { live on; meta copy; }
    application off { live on; meta off; }
}
--- run
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my @pubs = map { publish("$base/$_/m", loop => 1) } qw(on copy off);
ok(wait_published('m', 3), 'the three publish') or diag(map { publisher_log($_) } @pubs);
my $on = main::meta_with("$base/on/m", qw(width audiochannels));
ok($on, 'meta on: metadata sent') or diag(explain($on));
my %on = map { $_ => 1 } @{ $on->{keys} // [] };
is($on->{width}, 640, 'meta on: width from the SPS');
is($on->{height}, 360, 'meta on: cropped height from the SPS');
is($on->{framerate}, 25, 'meta on: frame rate from the SPS timing info');
ok($on{Server} && $on{displayHeight} && $on{audiochannels}, 'meta on: computed fields');
ok(!$on{duration} && !$on{filesize}, 'meta on: no duration/filesize for a live stream');
ok($on{encoder}, "meta on: the publisher's other fields kept");
my $copy = main::meta_with("$base/copy/m", 'duration');
my %copy = map { $_ => 1 } @{ $copy->{keys} // [] };
ok($copy{duration} && !$copy{Server}, "meta copy: the publisher's object as is") or diag(explain($copy));
is(main::meta_of("$base/off/m"), undef, 'meta off: no metadata');



=== TEST 2: meta on learns MP3 audio (no sequence header) from its first frame
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; meta on; }
    application copy { live on; meta copy; }
}
--- run
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my @pubs = map { publish("$base/$_/mp3", loop => 1, file => media('test-mp3.flv')) } qw(live copy);
ok(wait_published('mp3', 2), 'both publish') or diag(map { publisher_log($_) } @pubs);
my $on = main::meta_with("$base/live/mp3", qw(audiosamplerate audiochannels audiodatarate));
is($on->{audiocodecid}, 2, 'meta on: audio codec id 2 (MP3)') or diag(explain($on));
is($on->{audiosamplerate}, 22050, 'meta on: sample rate from the MP3 frame header');
is($on->{audiochannels}, 1, 'meta on: mono from the MP3 frame header');
is($on->{audiodatarate}, 32, 'meta on: bit rate (kbit/s) from the MP3 frame header');
# FFmpeg writes the bit rate divided by 1024: with meta copy that is what players get.
is(main::meta_with("$base/copy/mp3", 'audiodatarate')->{audiodatarate}, 31.25, "meta copy: the publisher's value");
