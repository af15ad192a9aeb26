#!/usr/bin/env bash
# Regenerates the VOD reader's fixtures (crates/rtmp-proto/src/vod tests): 2 s of 64x64 testsrc at
# 10 fps (a keyframe every 5 frames) and a 440 Hz sine, a few KB each. Packet counts the tests
# expect come from `ffprobe -count_packets` on these files (see the tests); after regenerating with
# another FFmpeg, check them again.
set -euo pipefail
cd "$(dirname "$0")"
FF=(ffmpeg -hide_banner -loglevel error -y -bitexact)
V=(-f lavfi -i testsrc=size=64x64:rate=10:duration=2)
A=(-f lavfi -i sine=frequency=440:sample_rate=22050:duration=2)
X264=(-c:v libx264 -preset veryfast -crf 40 -g 5 -keyint_min 5 -sc_threshold 0 -pix_fmt yuv420p)
AAC=(-c:a aac -b:a 16k -ac 1)
MP3=(-c:a libmp3lame -b:a 16k -ac 1)

# H.264 with B-frames + AAC, moov at the end (FFmpeg's default) and at the front.
"${FF[@]}" "${V[@]}" "${A[@]}" "${X264[@]}" -bf 2 "${AAC[@]}" avc_aac.mp4
"${FF[@]}" "${V[@]}" "${A[@]}" "${X264[@]}" -bf 2 "${AAC[@]}" -movflags +faststart avc_aac_faststart.mp4
# HEVC (hvc1 sample entry) + AAC.
"${FF[@]}" "${V[@]}" "${A[@]}" -c:v libx265 -preset ultrafast -x265-params log-level=none:keyint=5:min-keyint=5:bframes=0 \
    -crf 40 -pix_fmt yuv420p -tag:v hvc1 "${AAC[@]}" hevc_aac.mp4
# H.264 without B-frames + MP3 in MP4.
"${FF[@]}" "${V[@]}" "${A[@]}" "${X264[@]}" -bf 0 "${MP3[@]}" avc_mp3.mp4
# Audio only (AAC) in MP4.
"${FF[@]}" "${A[@]}" "${AAC[@]}" aac.mp4
# Two video tracks (64x64, then 32x32) and two audio tracks (AAC, then MP3): the play arguments
# vindex=N / aindex=N pick one of each.
"${FF[@]}" "${V[@]}" "${A[@]}" -f lavfi -i testsrc=size=32x32:rate=10:duration=2 -map 0:v -map 2:v -map 1:a -map 1:a \
    "${X264[@]}" -bf 0 -c:a:0 aac -b:a 16k -ac 1 -c:a:1 libmp3lame tracks.mp4
# Fragmented MP4: the reader refuses it.
"${FF[@]}" "${V[@]}" "${X264[@]}" -t 1 -movflags frag_keyframe+empty_moov frag.mp4
# FLV with and without FFmpeg's keyframe index in onMetaData.
"${FF[@]}" "${V[@]}" "${A[@]}" "${X264[@]}" -bf 2 "${AAC[@]}" avc_aac.flv
"${FF[@]}" "${V[@]}" "${A[@]}" "${X264[@]}" -bf 2 "${AAC[@]}" -flvflags add_keyframe_index avc_aac_index.flv
# Audio-only MP3 FLV.
"${FF[@]}" "${A[@]}" "${MP3[@]}" mp3.flv
ls -l ./*.mp4 ./*.flv

# Seeds of the fuzz targets vod_flv and vod_mp4: a selector byte (bit 0: Enhanced RTMP HEVC; bits
# 6-7 of vod_mp4: the second video / audio track; the rest: seeks and where the source answers
# Pending), then the file.
for t in flv mp4; do
    dir=../../fuzz/vod_$t
    mkdir -p "$dir"
    for f in ./*.$t; do
        n=$(basename "$f" ".$t")
        { printf '\x00'; cat "$f"; } >"$dir/seed-$n"
        { printf '\x2b'; cat "$f"; } >"$dir/seed-$n-enhanced"
    done
done
{ printf '\xc0'; cat tracks.mp4; } >../../fuzz/vod_mp4/seed-tracks-second
