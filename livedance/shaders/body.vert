#version 330 core
#include "skin.glsl"

uniform mat4 u_view_proj;
uniform mat4 u_light_view_proj;
uniform vec3 u_palette[8];  // dancer colours, cycled
uniform int u_palette_size;
uniform int u_first;  // the index of this draw's first dancer

out vec3 v_world;
out vec3 v_normal;
out vec4 v_light_clip;
flat out vec3 v_albedo;

void main() {
    v_albedo = u_palette[(u_first + gl_InstanceID) % u_palette_size];
    mat4 skin = skin_matrix();
    vec4 world = skin * vec4(in_position, 1.0);
    v_world = world.xyz;
    // Skin matrices are rotations plus translation (no scale), so the upper
    // 3x3 transforms normals too.
    v_normal = mat3(skin) * in_normal;
    v_light_clip = u_light_view_proj * world;
    gl_Position = u_view_proj * world;
}
