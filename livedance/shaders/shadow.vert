#version 330 core
#include "skin.glsl"

uniform mat4 u_light_view_proj;

void main() {
    gl_Position = u_light_view_proj * (skin_matrix() * vec4(in_position, 1.0));
}
