#version 330 core
// Fast approximate anti-aliasing (after Lottes' FXAA, the compact variant):
// where luma changes across a pixel, blend along the edge direction. One pass
// of 9 taps costs a fraction of multisampling on a CPU rasteriser.
uniform sampler2D u_image;

in vec2 v_uv;
out vec4 f_color;

const vec3 LUMA = vec3(0.299, 0.587, 0.114);
const float REDUCE_MIN = 1.0 / 128.0;
const float REDUCE_MUL = 1.0 / 8.0;
const float SPAN_MAX = 8.0;

void main() {
    vec2 px = 1.0 / vec2(textureSize(u_image, 0));
    vec3 rgb_m = texture(u_image, v_uv).rgb;
    float nw = dot(texture(u_image, v_uv + vec2(-1.0, -1.0) * px).rgb, LUMA);
    float ne = dot(texture(u_image, v_uv + vec2(1.0, -1.0) * px).rgb, LUMA);
    float sw = dot(texture(u_image, v_uv + vec2(-1.0, 1.0) * px).rgb, LUMA);
    float se = dot(texture(u_image, v_uv + vec2(1.0, 1.0) * px).rgb, LUMA);
    float m = dot(rgb_m, LUMA);
    float luma_min = min(m, min(min(nw, ne), min(sw, se)));
    float luma_max = max(m, max(max(nw, ne), max(sw, se)));

    // The edge runs perpendicular to the luma gradient.
    vec2 dir = vec2(-((nw + ne) - (sw + se)), (nw + sw) - (ne + se));
    float reduce = max((nw + ne + sw + se) * 0.25 * REDUCE_MUL, REDUCE_MIN);
    float scale = 1.0 / (min(abs(dir.x), abs(dir.y)) + reduce);
    dir = clamp(dir * scale, -SPAN_MAX, SPAN_MAX) * px;

    vec3 a = 0.5 * (texture(u_image, v_uv + dir * (1.0 / 3.0 - 0.5)).rgb
                  + texture(u_image, v_uv + dir * (2.0 / 3.0 - 0.5)).rgb);
    vec3 b = a * 0.5 + 0.25 * (texture(u_image, v_uv - dir * 0.5).rgb
                             + texture(u_image, v_uv + dir * 0.5).rgb);
    float luma_b = dot(b, LUMA);
    // The wide blend overshot into another surface: keep the narrow one.
    f_color = vec4((luma_b < luma_min || luma_b > luma_max) ? a : b, 1.0);
}
