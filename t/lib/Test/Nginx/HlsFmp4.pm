package Test::Nginx::HlsFmp4;
# fMP4 HLS readers for the tests (t/28-hls-fmp4.t, t/32-hls-fmp4-files.t): a media playlist's
# parts (EXT-X-MAP, keys, discontinuities), waiting for its segments, every listed segment's boxes
# and tfdt continuity (the box readers are t/lib/Test/Nginx/Mp4.pm), FFmpeg and ffprobe reading it.
use strict;
use warnings;
use Exporter 'import';
use Test::Nginx::Mp4 qw(parse_segment tfdt_problems probe_bytes);

our @EXPORT_OK = qw(playlist wait_segments check_segments decode probe_pair files);

# Playlist text and its parts: { text, target, seq, version, segs => [{dur, uri, discont, key, map}],
# maps => [uri...], first_map_line, first_inf_line, first_key_line }.
sub playlist {
    my ($file) = @_;
    my $t = Test::Nginx::Rtmp::slurp($file);
    my %p = (text => $t, segs => [], maps => []);
    $p{target} = $1 if $t =~ /^#EXT-X-TARGETDURATION:(\d+)$/m;
    $p{seq} = $1 if $t =~ /^#EXT-X-MEDIA-SEQUENCE:(\d+)$/m;
    $p{version} = $1 if $t =~ /^#EXT-X-VERSION:(\d+)$/m;
    my (%next, $map, $key);
    my $n = 0;
    for (split /\n/, $t) {
        $n++;
        if (/^#EXTINF:([\d.]+),/) { $next{dur} = $1; $p{first_inf_line} //= $n }
        elsif (/^#EXT-X-DISCONTINUITY$/) { $next{discont} = 1 }
        elsif (/^#EXT-X-MAP:URI="([^"]+)"/) { $map = $1; push @{ $p{maps} }, $1; $p{first_map_line} //= $n }
        elsif (/^#EXT-X-KEY:METHOD=AES-128,URI="([^"]+)"/) { $key = $1; $p{first_key_line} //= $n }
        elsif (/^#EXT-X-KEY:METHOD=NONE/) { $key = undef }
        elsif (/^[^#\s]/) { push @{ $p{segs} }, { %next, uri => $_, key => $key, map => $map }; %next = () }
    }
    return \%p;
}

# The playlist once it lists $n segments (waiting at most $secs s, default 30), else undef.
sub wait_segments {
    my ($file, $n, $secs) = @_;
    my $p;
    Test::Nginx::Rtmp::wait_until(sub { -s $file && ($p = playlist($file)) && @{ $p->{segs} } >= $n }, $secs // 30, 0.2);
    return $p;
}

# Checks every listed segment of a playlist in $dir: box layout, mfhd order, per-track tfdt
# continuity (within a run of segments without a discontinuity), the tracks ($need_tracks: "1,2"),
# a sync sample first in the video track. Returns a list of problems.
sub check_segments {
    my ($dir, $p, $need_tracks) = @_;
    my (@bad, %end, $last_seq);
    for my $s (@{ $p->{segs} }) {
        %end = () if $s->{discont};
        my $d = Test::Nginx::Rtmp::slurp("$dir/$s->{uri}");
        push @bad, tfdt_problems($s->{uri}, $d, \%end, \$last_seq);
        my $sg = parse_segment($d);
        my %tracks = map { $_->{track} => 1 } @{ $sg->{frags} };
        push @bad, "$s->{uri}: tracks " . join(',', sort keys %tracks) if join(',', sort keys %tracks) ne $need_tracks;
        my ($v) = grep { $_->{track} == 1 } @{ $sg->{frags} };
        push @bad, "$s->{uri}: first video sample not sync" if $v && ($v->{first_flags} // 0) & 0x10000;
    }
    return @bad;
}

# Decodes $secs of a URL with ffmpeg: (video frames, audio frames, stderr).
# Input options (e.g. -live_start_index 0) may come after $secs.
sub decode {
    my ($src, $secs, @in) = @_;
    my @t = defined $secs ? ('-t', $secs) : ();
    my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(['ffmpeg', '-hide_banner', '-nostdin', '-v', 'error', @in, '-i', $src,
        @t, '-f', 'framemd5', '-'], timeout => ($secs // 30) + 40);
    my $v = () = $out =~ /^0,/mg;
    my $a = () = $out =~ /^1,/mg;
    return ($v, $a, $err);
}

# ffprobe of the files init + segment: ("codec,tag;codec,tag", stderr).
sub probe_pair {
    my ($init, $seg) = @_;
    return probe_bytes(Test::Nginx::Rtmp::slurp($init), Test::Nginx::Rtmp::slurp($seg));
}

# The names in $dir that match $re, sorted.
sub files { my ($dir, $re) = @_; opendir(my $d, $dir) or return (); my @f = sort grep { /$re/ } readdir $d; return @f }

1;
